"""The config file: point the tool at your own service.

A ``chaos.toml`` (any path, ``--config PATH``) or the ``[tool.chaos]`` table
of a ``pyproject.toml``; the format is documented in the README ("Point it
at your own service") and ``examples/reference.toml`` describes the
reference service completely. Loading is three steps, in the order a user
fixes what they find (the keys and their types are checked before step 2):

1. ``--set dotted.key=VALUE`` overrides (VALUE read as TOML when it parses,
   else as text) are written into the parsed document;
2. ``${NAME}`` in any string is replaced by the environment variable
   (``$${`` is a literal ``${``); a missing variable names the key;
3. strict validation: unknown keys, wrong types, missing required keys,
   malformed or live secrets, traffic off loopback without ``allow_hosts``,
   live Stripe, and statements that delete rows in a database not declared
   ``disposable``. Every refusal is one :class:`UsageError` line that names
   the key and the fix (exit 2).

Every secret loaded (webhook secrets, the API key, header values, the
database password) is registered with :data:`chaos.log.redactor`.
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chaos.errors import UsageError
from chaos.invariants import INVARIANTS
from chaos.log import redactor
from chaos.promises import CONFIRMING_EVENTS, REFUND_POLICIES, SIGNATURE_POLICIES, Promises
from chaos.safety import LIVE_STRIPE_HOSTS, check_stripe_key, check_url, is_loopback
from chaos.target import (
    DEFAULT_BODY,
    JOURNEYS,
    TEMPLATE_NAMES,
    InvariantFunction,
    PythonInvariant,
    SqlInvariant,
    Target,
    UserInvariant,
    placeholders,
)

_DEFAULTS = Target(base_url="", webhook_secret="")

#: Every key of the format: a type tag, or a nested table. ``invariants`` is an
#: array of tables with the keys of ``_INVARIANT``.
_INVARIANT: dict[str, Any] = {"name": "str", "sql": "str", "python": "str", "message": "str"}
SCHEMA: dict[str, Any] = {
    "target": {
        "name": "str", "base_url": "str", "allow_hosts": "strlist", "health_path": "str",
        "metrics_path": "str",
        "checkout": {"path": "str", "method": "str", "headers": "strmap",
                     "idempotency_header": "str", "body": "json", "session_id": "str",
                     "url": "str", "journey": "str", "session": "json",
                     "payment_intent": "json", "payment_link": {"metadata": "json"}},
        "webhook": {"path": "str", "headers": "strmap", "secret": "str", "old_secret": "str",
                    "events": "strlist"},
        "stripe": {"session_metadata_key": "str"},
    },
    "promises": {"signatures": "str", "confirms": "strlist", "refunds": "str"},
    "stripe": {"port": "int", "api_key": "str"},
    "database": {"url": "str", "schema": "str", "disposable": "bool"},
    "fixtures": {"event": "str", "ticket_type": "str", "buyer": "str", "cleanup": "strlist"},
    "observe": {"tickets_per_payment": "str", "tickets_per_ticket_type": "str"},
    "invariants": [_INVARIANT],
}
REQUIRED = ("target.base_url", "target.webhook.secret", "database.url")
_TYPE_NAMES = {"str": "a string", "int": "an integer", "bool": "true or false",
               "strlist": "a list of strings", "strmap": "a table of strings",
               "json": "a JSON value (table, array, string, number)", "table": "a table",
               "tables": "an array of tables ([[invariants]])"}
_METHODS = ("POST", "PUT", "PATCH")
_DELETES = re.compile(r"\b(delete|truncate|drop)\b", re.IGNORECASE)
_ENV = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_EVENT_TYPE = re.compile(r"^(\*|[a-z_]+(\.[a-z_]+)+)$")
#: The names a Payment Link's metadata template may use (it is listed before any buyer).
LINK_NAMES = ("event_id", "product_id")


@dataclass(frozen=True)
class Config:
    """A loaded, validated config: the target and the run's settings."""

    path: str                      # as given on the command line
    target: Target
    stripe_port: int
    stripe_api_key: str
    database_url: str
    database_schema: str | None
    disposable: bool
    cleanup: tuple[str, ...]
    allow_hosts: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.target.name or self.target.base_url

    def __repr__(self) -> str:   # never the database URL (a password) or the API key
        return f"Config(path={self.path!r}, target={self.target!r})"

    def report_target(self) -> dict[str, Any]:
        """The report's ``target``: what a replay needs to find this config again."""
        return {"kind": "config", "name": self.name, "config": self.path}


# -- loading -----------------------------------------------------------------

def load(path: str | Path, overrides: Sequence[str] = (), *,
         environ: Mapping[str, str] | None = None) -> Config:
    """Read, override, interpolate and validate the config at ``path``."""
    document = read(path)
    for item in overrides:
        apply_override(document, item)
    _check_shape(document, SCHEMA)   # a typo'd key first: it may be why a variable is unset
    document = interpolate(document, os.environ if environ is None else environ)
    return validate(document, path=str(path))


def read(path: str | Path) -> dict[str, Any]:
    """The parsed TOML: the whole file, or ``[tool.chaos]`` of a pyproject.toml."""
    where = Path(path)
    try:
        text = where.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file: give the path of a chaos.toml "
                         "(see examples/reference.toml)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--config {path}: cannot read it ({type(exc).__name__}): "
                         "give a readable UTF-8 TOML file") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--config {path}: invalid TOML ({exc}): fix the syntax") from None
    if where.name == "pyproject.toml":
        tool = data.get("tool")
        chaos = tool.get("chaos") if isinstance(tool, dict) else None
        if not isinstance(chaos, dict):
            raise UsageError(f"--config {path}: no [tool.chaos] table: add one, or give "
                             "the path of a chaos.toml")
        return chaos
    return data


def apply_override(document: dict[str, Any], item: str) -> None:
    """Write ``--set dotted.key=VALUE`` into ``document`` (VALUE as TOML, else text)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise UsageError(f"--set {item!r}: write it as --set dotted.key=VALUE, e.g. "
                         "--set target.base_url=http://127.0.0.1:9000")
    try:
        value: Any = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    parts = key.split(".")
    node: Any = document
    for i, part in enumerate(parts[:-1]):
        where = ".".join(parts[:i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise UsageError(f"--set {key}: {where} is not an entry of "
                                 f"{'.'.join(parts[:i])} (it has {len(node)}): use 0..{len(node) - 1}")
            node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise UsageError(f"--set {key}: {'.'.join(parts[:i])} is not a table")
        node = node.setdefault(part, {})
    if isinstance(node, list):
        last = parts[-1]
        if not last.isdigit() or int(last) >= len(node):
            raise UsageError(f"--set {key}: no entry {last} in {'.'.join(parts[:-1])}")
        node[int(last)] = value
    elif isinstance(node, dict):
        node[parts[-1]] = value
    else:
        raise UsageError(f"--set {key}: {'.'.join(parts[:-1])} is not a table")


def interpolate(value: Any, environ: Mapping[str, str], key: str = "") -> Any:
    """``value`` with ``${NAME}`` replaced in every string (``$${`` escapes)."""
    if isinstance(value, dict):
        return {k: interpolate(v, environ, f"{key}.{k}" if key else str(k))
                for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, environ, f"{key}.{i}") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name = match.group(1)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise UsageError(f"{key}: ${{{name}}} is not an environment variable name: "
                             "use ${NAME}, or $${ for a literal ${")
        if name not in environ:
            raise UsageError(f"{key}: environment variable {name} is not set: export it, or "
                             f"set the key with --set {key}=...")
        return environ[name]

    return _ENV.sub(replace, value)


# -- validation --------------------------------------------------------------

def _type_ok(tag: str, value: Any) -> bool:
    if tag == "str":
        return isinstance(value, str)
    if tag == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if tag == "bool":
        return isinstance(value, bool)
    if tag == "strlist":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if tag == "strmap":
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    return tag == "json" and isinstance(value, (dict, list, str, int, float, bool))


def _what(value: Any) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "an array", dict: "a table"}
    return next((name for kind, name in kinds.items() if type(value) is kind),
                type(value).__name__)


def _check_shape(document: Mapping[str, Any], schema: Mapping[str, Any], prefix: str = "") -> None:
    for key, value in document.items():
        where = f"{prefix}{key}"
        if key not in schema:
            near = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f" (did you mean {prefix}{near[0]}?)" if near else \
                f" (known here: {', '.join(prefix + k for k in schema)})"
            raise UsageError(f"unknown key {where}{hint}: remove or rename it")
        tag = schema[key]
        if isinstance(tag, dict):
            if not isinstance(value, dict):
                raise UsageError(f"{where} must be a table ([{where}]), not {_what(value)}: "
                                 "fix its type")
            _check_shape(value, tag, where + ".")
        elif isinstance(tag, list):
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise UsageError(f"{where} must be an array of tables ([[{where}]]), not "
                                 f"{_what(value)}: fix its type")
            for i, entry in enumerate(value):
                _check_shape(entry, tag[0], f"{where}.{i}.")
        elif not _type_ok(tag, value):
            raise UsageError(f"{where} must be {_TYPE_NAMES[tag]}, not {_what(value)} "
                             f"({value!r:.40}): fix its type")


def _get(document: Mapping[str, Any], key: str, default: Any = None) -> Any:
    node: Any = document
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def _walk_strings(value: Any, key: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _walk_strings(v, f"{key}.{k}" if key else k)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _walk_strings(v, f"{key}.{i}")]
    return [(key, value)] if isinstance(value, str) else []


def _path(document: Mapping[str, Any], key: str, default: str) -> str:
    value = _get(document, key, default)
    if value and not value.startswith("/"):
        raise UsageError(f"{key} {value!r} must be a path starting with '/': "
                         f"write it as '/{value}'")
    return str(value)


def validate(document: Mapping[str, Any], *, path: str = "chaos.toml") -> Config:
    """A :class:`Config` from a parsed, interpolated document, or a UsageError."""
    _check_shape(document, SCHEMA)
    for key in REQUIRED:
        if not _get(document, key):
            raise UsageError(f"{key} is required: set it in {path} or with --set {key}=...")
    for key, text in _walk_strings(document):
        if re.search(r"\b(?:sk|rk)_live_", text):
            raise UsageError(f"{key} holds a live Stripe key (sk_live_/rk_live_): the tool "
                             "never uses live keys; use a test key (sk_test_...)")
        if any(host in text.lower() for host in LIVE_STRIPE_HOSTS):
            raise UsageError(f"{key} points at live Stripe ({text!r:.60}): the tool never sends "
                             "traffic there; point the target's Stripe client at the fake "
                             "Stripe API (stripe.port)")

    allow = tuple(h.strip().lower() for h in _get(document, "target.allow_hosts", []))
    for host in allow:
        if host in LIVE_STRIPE_HOSTS or host.endswith(".stripe.com"):
            raise UsageError(f"target.allow_hosts lists {host}: live Stripe is never allowed")
    base_url = str(_get(document, "target.base_url")).rstrip("/")
    try:
        check_url(base_url, what="target.base_url", allow_hosts=allow)
    except UsageError as exc:
        raise UsageError(f"{exc}" + ("" if "allow_hosts" in str(exc) else
                                     ": write it as http://127.0.0.1:PORT")) from None

    checkout = _get(document, "target.checkout", {})
    method = str(checkout.get("method", "POST")).upper()
    if method not in _METHODS:
        raise UsageError(f"target.checkout.method {method!r} is not one of "
                         f"{', '.join(_METHODS)}: fix it")
    checkout_headers = _headers(checkout.get("headers", {}), "target.checkout.headers")
    idem = checkout.get("idempotency_header", "Idempotency-Key")
    if idem and not _HEADER.match(idem):
        raise UsageError(f"target.checkout.idempotency_header {idem!r} is not a header name: "
                         "fix it, or set it to \"\" when the target takes no key")
    body = checkout.get("body", DEFAULT_BODY)
    fixture_buyer = _get(document, "fixtures.buyer", "")
    journey, session_template, link_metadata, events, intent_template = _journey(
        document, bool(fixture_buyer))
    session_path = checkout.get("session_id", "sessionId")
    if not session_path:
        raise UsageError("target.checkout.session_id must be the dotted path to the Checkout "
                         "Session id in the checkout answer (e.g. \"checkout.id\"): set it")

    webhook = _get(document, "target.webhook", {})
    secret = webhook["secret"]
    old_secret = webhook.get("old_secret", "")
    for key, value in (("target.webhook.secret", secret), ("target.webhook.old_secret",
                                                            old_secret)):
        if value and not value.startswith("whsec_"):
            raise UsageError(f"{key} must be a webhook signing secret (whsec_...), the one "
                             "the target verifies deliveries with: fix it")
    webhook_headers = _headers(webhook.get("headers", {}), "target.webhook.headers")

    port = _get(document, "stripe.port", 12111)
    if not 1 <= port <= 65535:
        raise UsageError(f"stripe.port {port} is outside 1..65535: give the port the "
                         "target's Stripe client sends its API calls to")
    api_key = _get(document, "stripe.api_key", "")
    check_stripe_key(api_key, what="stripe.api_key")

    db_url = str(_get(document, "database.url"))
    parts = _database_url(db_url, allow, "database.url")
    schema = _get(document, "database.schema", "")
    _schema_name(schema, "database.schema")
    disposable = bool(_get(document, "database.disposable", False))

    fixture_event = _get(document, "fixtures.event", _DEFAULTS.fixture_event_sql)
    fixture_tt = _get(document, "fixtures.ticket_type", _DEFAULTS.fixture_ticket_type_sql)
    cleanup = tuple(_get(document, "fixtures.cleanup", []))
    observe_payment = _get(document, "observe.tickets_per_payment",
                           _DEFAULTS.tickets_per_payment_sql)
    observe_tt = _get(document, "observe.tickets_per_ticket_type",
                      _DEFAULTS.tickets_per_ticket_type_sql)
    statements = [("fixtures.event", fixture_event), ("fixtures.ticket_type", fixture_tt),
                  *([("fixtures.buyer", fixture_buyer)] if fixture_buyer else []),
                  ("observe.tickets_per_payment", observe_payment),
                  ("observe.tickets_per_ticket_type", observe_tt)]
    invariants: list[UserInvariant] = []
    for i, entry in enumerate(_get(document, "invariants", [])):
        name, sql, python = entry.get("name", ""), entry.get("sql", ""), entry.get("python")
        if not name.strip():
            raise UsageError(f"invariants.{i}.name is required: give each [[invariants]] "
                             "a name, and the sql that must return no rows or a python function")
        if python is not None and "sql" in entry:
            raise UsageError(f"invariants.{i} has both sql and python: keep one (an invariant "
                             "is a query or a function)")
        _check_invariant_name(name, invariants, f"invariants.{i}.name")
        message = entry.get("message", "")
        if python is not None:
            invariants.append(PythonInvariant(name=name, message=message, check=import_function(
                python, f"invariants.{i}.python", base=Path(path).parent)))
            continue
        if not sql.strip():
            raise UsageError(f"invariants.{i}.sql is required: give each [[invariants]] the "
                             "sql that must return no rows ($1 = the example's event id), or "
                             "python = \"module:function\"")
        invariants.append(SqlInvariant(name=name, sql=sql, message=message))
        statements.append((f"invariants.{i}.sql", sql))
    _check_statements(statements, disposable)
    for secret_value in (secret, old_secret, api_key, *_secret_values(checkout_headers),
                         *_secret_values(webhook_headers)):
        redactor.add(secret_value)
    if parts.password:
        redactor.add(parts.password)

    promises = _promises(document, idem)
    metadata_key = _get(document, "target.stripe.session_metadata_key", "event_id")
    if not metadata_key.strip():
        raise UsageError("target.stripe.session_metadata_key is empty: give the Checkout "
                         "Session metadata key that holds the event id, or leave it out "
                         "(event_id)")
    target = Target(
        base_url=base_url,
        webhook_secret=secret,
        webhook_path=_path(document, "target.webhook.path", _DEFAULTS.webhook_path),
        checkout_path=_path(document, "target.checkout.path", _DEFAULTS.checkout_path),
        metrics_path=_path(document, "target.metrics_path", "") or None,
        health_path=_path(document, "target.health_path", ""),
        fixture_event_sql=fixture_event,
        fixture_ticket_type_sql=fixture_tt,
        tickets_per_payment_sql=observe_payment,
        tickets_per_ticket_type_sql=observe_tt,
        name=str(_get(document, "target.name", "")) or base_url,
        checkout_method=method,
        checkout_extra_headers=checkout_headers,
        idempotency_header=idem,
        body_template=body,
        session_id_path=session_path,
        url_path=checkout.get("url", "url"),
        webhook_headers=webhook_headers,
        old_secret=old_secret or None,
        invariants=tuple(invariants),
        journey=journey,
        session_template=session_template,
        link_metadata_template=link_metadata,
        intent_template=intent_template,
        webhook_events=events,
        fixture_buyer_sql=fixture_buyer,
        promises=promises,
        session_metadata_key=metadata_key,
    )
    return Config(path=path, target=target, stripe_port=port, stripe_api_key=api_key,
                  database_url=db_url, database_schema=schema or None, disposable=disposable,
                  cleanup=cleanup, allow_hosts=allow)


def _database_url(url: str, allow: Sequence[str], key: str) -> Any:
    """The parts of a PostgreSQL URL on loopback (or an allowed host), else a UsageError."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise UsageError(f"{key} is not a PostgreSQL URL: write it as "
                         "postgresql://user:password@127.0.0.1:5432/dbname")
    db_host = (parts.hostname or "localhost").lower()
    if not is_loopback(db_host) and db_host not in allow:
        raise UsageError(f"{key} host {db_host} is not on loopback: list it in "
                         "target.allow_hosts to connect there")
    return parts


def _schema_name(schema: str | None, key: str) -> None:
    if schema and not _IDENT.match(schema):
        raise UsageError(f"{key} {schema!r} is not a schema name: fix it")


def _check_statements(statements: Sequence[tuple[str, str]], disposable: bool) -> None:
    """Every statement given, and none that deletes rows unless the database is disposable."""
    for key, sql in statements:
        if not sql.strip():
            raise UsageError(f"{key} is empty: give the SQL statement, or leave the key out "
                             "for the reference service's")
        if not disposable and _DELETES.search(_without_literals(sql)):
            raise UsageError(f"{key} deletes or drops rows, and database.disposable is not "
                             "true: the tool never deletes rows in a database it did not "
                             "create; remove the statement, or declare the database disposable")


def target_config(target: Target, *, database_url: str, database_schema: str | None = None,
                  stripe_port: int = 12111, stripe_api_key: str = "", disposable: bool = False,
                  cleanup: Sequence[str] = (), allow_hosts: Sequence[str] = (),
                  name: str = "python") -> Config:
    """A :class:`Config` for a target described in Python, checked as a config file is
    (loopback only unless ``allow_hosts``, secrets well formed and never live, no statement
    that deletes rows unless ``disposable``, invariant names unique); ``name`` stands for
    the config's path in reports (a case found through it is replayed with the same
    ``Config``: ``chaos.replay(options, config=...)``). Secrets go to the log redactor."""
    allow = tuple(h.strip().lower() for h in allow_hosts)
    for host in allow:
        if host in LIVE_STRIPE_HOSTS or host.endswith(".stripe.com"):
            raise UsageError(f"allow_hosts lists {host}: live Stripe is never allowed")
    check_url(target.base_url, what="Target.base_url", allow_hosts=allow)
    for key, secret in (("Target.webhook_secret", target.webhook_secret),
                        ("Target.old_secret", target.old_secret)):
        if (secret is not None or key == "Target.webhook_secret") \
                and not (secret or "").startswith("whsec_"):
            raise UsageError(f"{key} must be a webhook signing secret (whsec_...), the one "
                             "the target verifies deliveries with: fix it")
    if not 1 <= stripe_port <= 65535:
        raise UsageError(f"stripe_port {stripe_port} is outside 1..65535: give the port the "
                         "target's Stripe client sends its API calls to")
    check_stripe_key(stripe_api_key, what="stripe_api_key")
    parts = _database_url(database_url, allow, "database_url")
    _schema_name(database_schema, "database_schema")
    seen: list[UserInvariant] = []
    statements = [("Target.fixture_event_sql", target.fixture_event_sql),
                  ("Target.fixture_ticket_type_sql", target.fixture_ticket_type_sql),
                  *([("Target.fixture_buyer_sql", target.fixture_buyer_sql)]
                    if target.fixture_buyer_sql else []),
                  ("Target.tickets_per_payment_sql", target.tickets_per_payment_sql),
                  ("Target.tickets_per_ticket_type_sql", target.tickets_per_ticket_type_sql),
                  *((f"cleanup.{i}", sql) for i, sql in enumerate(cleanup))]
    for i, invariant in enumerate(target.invariants):
        _check_invariant_name(invariant.name, seen, f"Target.invariants.{i}.name")
        seen.append(invariant)
        if isinstance(invariant, SqlInvariant):
            statements.append((f"Target.invariants.{i}.sql", invariant.sql))
    _check_statements(statements, disposable)
    for secret in (target.webhook_secret, target.old_secret or "", target.anon_key,
                   stripe_api_key, *_secret_values(target.checkout_extra_headers or {}),
                   *_secret_values(target.webhook_headers)):
        if secret:
            redactor.add(secret)
    if parts.password:
        redactor.add(parts.password)
    return Config(path=name, target=target, stripe_port=stripe_port,
                  stripe_api_key=stripe_api_key, database_url=database_url,
                  database_schema=database_schema, disposable=disposable,
                  cleanup=tuple(cleanup), allow_hosts=allow)


def _check_invariant_name(name: str, before: Sequence[UserInvariant], key: str) -> None:
    """A user invariant's name: short, and no other invariant's (built-in or earlier)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise UsageError(f"{key} {name!r} must be a short name "
                         "(letters, digits, - _ .), e.g. no-admission-without-purchase")
    if name in INVARIANTS or any(name == inv.name for inv in before):
        raise UsageError(f"{key} {name!r} is already an invariant's name: choose another")


def import_function(reference: str, key: str, *, base: Path | None = None) -> InvariantFunction:
    """The function a ``module:function`` reference names (``shop_invariants:no_void_sold``),
    imported from the import path, else from the folder ``base`` (the config's)."""
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name.strip() or not attribute.strip():
        raise UsageError(f"{key} {reference!r}: write it as \"module:function\" "
                         "(e.g. \"shop_invariants:no_void_sold\")")
    folder = str(base.resolve()) if base is not None else None
    added = folder is not None and folder not in sys.path
    if folder is not None and added:
        sys.path.append(folder)   # after the import path: a fallback
    try:
        module = importlib.import_module(module_name.strip())
    except Exception as exc:
        raise UsageError(f"{key} {reference!r}: cannot import {module_name} "
                         f"({type(exc).__name__}: {str(exc)[:120]}): put it on the import path "
                         "(PYTHONPATH) or next to the config") from None
    finally:
        if folder is not None and added:
            sys.path.remove(folder)
    found: Any = module
    for part in attribute.strip().split("."):
        found = getattr(found, part, None)
    if not callable(found):
        raise UsageError(f"{key} {reference!r}: {module_name} has no function {attribute}: "
                         "fix the name")
    function: InvariantFunction = found
    return function


def _journey(document: Mapping[str, Any], buyer_fixture: bool
             ) -> tuple[str, Any, Any, tuple[str, ...], Any]:
    """``target.checkout.journey`` and what goes with it: the session template, the
    Payment Link metadata template, the webhook's subscription, the PaymentIntent
    template. Every template name
    is checked here, except those a ``fixtures.buyer`` row may add (the preflight
    checks those against the columns the statement returns)."""
    checkout = _get(document, "target.checkout", {})
    journey = str(checkout.get("journey", "endpoint"))
    if journey not in JOURNEYS:
        raise UsageError(f"target.checkout.journey {journey!r} is not one of "
                         f"{', '.join(JOURNEYS)}: fix it")
    session = checkout.get("session")
    intent = checkout.get("payment_intent")
    link_metadata = _get(document, "target.checkout.payment_link.metadata")
    for key, value, wanted in (("target.checkout.session", session, "stripe-session"),
                               ("target.checkout.payment_link", link_metadata, "payment-link"),
                               ("target.checkout.payment_intent", intent, "payment-intent")):
        if value is not None and journey != wanted:
            raise UsageError(f"{key} is for journey = \"{wanted}\", and target.checkout.journey "
                             f"is \"{journey}\": remove it, or set the journey")
    if session is not None and not isinstance(session, dict):
        raise UsageError("target.checkout.session must be a table (line_items, metadata, "
                         "customer_email, ...): fix its type")
    if intent is not None and not isinstance(intent, dict):
        raise UsageError("target.checkout.payment_intent must be a table (amount, currency, "
                         "metadata, receipt_email, ...): fix its type")
    if link_metadata is not None and not isinstance(link_metadata, dict):
        raise UsageError("target.checkout.payment_link.metadata must be a table of strings: "
                         "fix its type")
    names = set(TEMPLATE_NAMES)
    templates = [("target.checkout.body", checkout.get("body", DEFAULT_BODY)),
                 ("target.checkout.path", _get(document, "target.checkout.path", "")),
                 ("target.webhook.path", _get(document, "target.webhook.path", "")),
                 ("target.checkout.session", session),
                 ("target.checkout.payment_intent", intent)]
    for key, template in templates:
        unknown = sorted(placeholders(template) - names)
        if unknown and not buyer_fixture:
            raise UsageError(f"{key} uses {{{{{unknown[0]}}}}}, which is not a name the tool "
                             f"fills: use {', '.join(TEMPLATE_NAMES)}, or a column "
                             "fixtures.buyer returns")
    unknown = sorted(placeholders(link_metadata) - set(LINK_NAMES))
    if unknown:
        raise UsageError(f"target.checkout.payment_link.metadata uses {{{{{unknown[0]}}}}}: the "
                         f"link is listed before any buyer, so use {', '.join(LINK_NAMES)}")
    events = tuple(_get(document, "target.webhook.events", []))
    for i, name in enumerate(events):
        if not _EVENT_TYPE.match(name):
            raise UsageError(f"target.webhook.events.{i} {name!r} is not an event type: write "
                             "it as Stripe names it (checkout.session.completed), or \"*\"")
    return journey, session, link_metadata, events, intent


def template_names_in(target: Target) -> list[tuple[str, set[str]]]:
    """Every template of ``target`` with the names it uses (the preflight checks the
    ones no built-in name covers against the columns ``fixtures.buyer`` returns)."""
    return [("target.checkout.body", placeholders(target.body_template or DEFAULT_BODY)),
            ("target.checkout.path", placeholders(target.checkout_path)),
            ("target.webhook.path", placeholders(target.webhook_path)),
            ("target.checkout.session", placeholders(target.session_template))]


def _promises(document: Mapping[str, Any], idempotency_header: str) -> Promises:
    """``[promises]``, checked: each value one of the documented choices."""
    signatures = _get(document, "promises.signatures", "verify")
    if signatures not in SIGNATURE_POLICIES:
        raise UsageError(f"promises.signatures {signatures!r} is not one of "
                         f"{', '.join(SIGNATURE_POLICIES)}: \"verify\" if the webhook checks "
                         "Stripe-Signature, \"refetch\" if it re-reads every object from Stripe")
    refunds = _get(document, "promises.refunds", "void")
    if refunds not in REFUND_POLICIES:
        raise UsageError(f"promises.refunds {refunds!r} is not one of "
                         f"{', '.join(REFUND_POLICIES)}: \"void\" if a refund voids the tickets, "
                         "\"flag\" if it flags the order for an admin")
    confirms = _get(document, "promises.confirms", None)
    if confirms is not None:
        unknown = [e for e in confirms if e not in CONFIRMING_EVENTS]
        if unknown or not confirms:
            raise UsageError(f"promises.confirms {confirms!r} must list the event types that "
                             f"confirm a payment, among {', '.join(CONFIRMING_EVENTS)}: fix it")
        return Promises(idempotency_header=idempotency_header, signatures=signatures,
                        confirms=tuple(dict.fromkeys(confirms)), refunds=refunds)
    return Promises(idempotency_header=idempotency_header, signatures=signatures,
                    refunds=refunds)


def _headers(headers: Mapping[str, str], key: str) -> dict[str, str]:
    for name, value in headers.items():
        if not _HEADER.match(name):
            raise UsageError(f"{key}: {name!r} is not a header name: fix it")
        if "\n" in value or "\r" in value:
            raise UsageError(f"{key}.{name} holds a line break: remove it")
    return dict(headers)


def _secret_values(headers: Mapping[str, str]) -> list[str]:
    """The values of headers that carry credentials (and the token of ``Bearer TOKEN``)."""
    found = []
    for name, value in headers.items():
        if re.search(r"auth|key|token|secret|cookie|signature|password", name, re.IGNORECASE):
            found += [value, value.split()[-1] if value.split() else value]
    return found


def _without_literals(sql: str) -> str:
    """``sql`` without its string literals and comments (a name like 'drop-in' is not a drop)."""
    sql = re.sub(r"'(?:[^']|'')*'", "''", sql)
    sql = re.sub(r"--[^\n]*", "", sql)
    return re.sub(r"/\*.*?\*/", "", sql, flags=re.DOTALL)
