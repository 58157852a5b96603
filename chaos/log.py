"""Logging: structlog, configured once at the edge, with one redaction
processor that every output passes through.

Two sinks, one pipeline: a human line on stderr (warnings, or everything
with ``--verbose``) and, with ``--log-json PATH``, every event as one JSON
line. The :data:`redactor` runs before either renderer, and the reports use
the same redactor, so a secret that is hidden in one output is hidden in all.

What is secret: the strings registered with :meth:`Redactor.add` (the run's
webhook secret and API key), the values of keys such as ``webhook_secret`` or
``authorization``, and anything shaped like a secret wherever it appears in
text: webhook signing secrets (``whsec_...``), secret and restricted API keys
(``sk_test_...``, ``rk_live_...``), ``Stripe-Signature`` values
(``t=...,v1=...``), ``Authorization`` credentials and URL passwords.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import Any

import structlog

REDACTED = "[redacted]"

#: Keys whose values are secret whatever they hold (compared lower-case, ``-`` as ``_``).
SECRET_KEYS = frozenset({
    "webhook_secret", "secret", "api_key", "apikey", "password", "authorization",
    "stripe_signature", "stripe_api_key", "stripe_key", "client_secret", "cookie", "anon_key",
})

#: Secret-shaped text, replaced wherever it appears. Each keeps what names the
#: secret (the header name, the URL's user) and hides the value.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_]+"), REDACTED),
    (re.compile(r"\b(?:sk|rk)_(?:test|live)_[A-Za-z0-9]+"), REDACTED),
    (re.compile(r"\bt=\d+(?:,\s*v\d=[0-9a-fA-F]+)+"), REDACTED),
    (re.compile(r"(?i)\b(stripe-signature\s*[:=]\s*)[^\s,;\"']+(?:,[^\s;\"']+)*"), r"\1" + REDACTED),
    (re.compile(r"(?i)\b(authorization\s*[:=]\s*)(?:(?:bearer|basic)\s+)?[^\s,;\"']+"),
     r"\1" + REDACTED),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    (re.compile(r"(://[^:/@\s]*:)[^@\s/]+@"), r"\1" + REDACTED + "@"),
)


def _is_secret_key(key: object) -> bool:
    name = str(key).lower().replace("-", "_")
    return name in SECRET_KEYS or name.endswith("_secret") or name.endswith("password")


class Redactor:
    """Replaces secret values wherever they appear, and values of secret keys.

    Also a structlog processor: ``(logger, method, event_dict) -> event_dict``.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def add(self, secret: str) -> None:
        """Register a secret string: from now on it never appears in any output."""
        if secret and len(secret) >= 6 and secret not in self.secrets:
            self.secrets = sorted([*self.secrets, secret], key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            value = value.replace(secret, REDACTED)
        for pattern, replacement in _PATTERNS:
            value = pattern.sub(replacement, value)
        return value

    def value(self, value: Any) -> Any:
        """A copy of ``value`` (str, dict, list, tuple, scalars) with every secret redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: (REDACTED if _is_secret_key(k) and v is not None else self.value(v))
                    for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.value(v) for v in value)
        return value

    def __call__(self, logger: Any, method: str,
                 event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        redacted: MutableMapping[str, Any] = self.value(dict(event_dict))
        return redacted


#: The process-wide redactor: secrets are registered as soon as they exist.
redactor = Redactor()

#: The stdlib logger every structlog logger of the tool writes through.
LOGGER_NAME = "chaos"


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redactor,
    ]


def configure(*, verbose: bool = False, json_path: Path | None = None) -> None:
    """Set logging up once, at the edge (the CLI).

    stderr gets warnings (everything from INFO with ``verbose``) as console
    lines; ``json_path``, when given, gets every event from DEBUG up as JSON
    lines (the file is truncated first). Both pass through :data:`redactor`.
    """
    shared = _shared_processors()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    console.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.dev.ConsoleRenderer(colors=False)],
    ))
    handlers: list[logging.Handler] = [console]
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        lines = logging.FileHandler(json_path, mode="w", encoding="utf-8")
        lines.setLevel(logging.DEBUG)
        lines.setFormatter(structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.JSONRenderer(default=str)],
        ))
        handlers.append(lines)

    root = logging.getLogger(LOGGER_NAME)
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if json_path is not None else console.level)
    root.propagate = False

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def get_logger(**context: Any) -> Any:
    """A logger of the tool (``chaos`` in the stdlib tree), bound to ``context``."""
    return structlog.get_logger(LOGGER_NAME).bind(**context)


def close() -> None:
    """Flush and close the log files (the CLI calls this before it exits)."""
    root = logging.getLogger(LOGGER_NAME)
    for handler in list(root.handlers):
        handler.flush()
        if isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
            handler.close()
