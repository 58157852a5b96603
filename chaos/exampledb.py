"""``--example-db URL``: Hypothesis' own example databases, shared by shards and runs.

    DIR                          DirectoryBasedExampleDatabase(DIR)
    redis://HOST:PORT/DB         RedisExampleDatabase (the ``shard`` extra: redis);
      ?key_prefix=NAME:          its keys' prefix (default ``payment-chaos:``)
    github://OWNER/REPO[/NAME]   ReadOnlyDatabase(GitHubArtifactDatabase(OWNER, REPO, NAME))
                                 multiplexed with .hypothesis/chaos-examples, the local
                                 directory a CI job uploads as that artifact (GITHUB_TOKEN
                                 from the environment, as Hypothesis reads it)

Hypothesis writes a test's failing examples to its database and replays
them first on the next run, but only examples that *raised*, and not at all
under a fixed seed (``hypothesis.seed`` switches the database off). The
search raises nothing (it records a failure and spends the whole budget) and
runs seeded, so the tool keeps its failures itself, through the same
database API and backends: :class:`SavedFailures` stores each failing
scenario (as the corpus writes it: ``Scenario.to_data()``) under one key per
target, and the search replays them before anything else (its ``replay``
phase); one that no longer fails is deleted, as Hypothesis deletes a stale
example. A shard that starts after another saved a failure, and the next
night's run, find it first.

Its host is held to loopback like every URL the tool touches, unless the
user allows it by name (``--allow-host HOST`` or ``CHAOS_ALLOW_HOSTS``, or a
config's ``target.allow_hosts``): a shared Redis elsewhere, or
``api.github.com`` for ``github://``, which is where
``GitHubArtifactDatabase`` reads the artifact. Its URL may carry a
password: it is never logged or reported except redacted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from hypothesis.database import (
    DirectoryBasedExampleDatabase,
    ExampleDatabase,
    GitHubArtifactDatabase,
    MultiplexedDatabase,
    ReadOnlyDatabase,
)

from chaos.errors import InfrastructureError, UsageError
from chaos.log import redactor
from chaos.safety import is_loopback
from strategies import Scenario

T = TypeVar("T")

#: Where a ``github://`` database keeps (and a CI job uploads) its local half.
LOCAL_DIRECTORY = Path(".hypothesis/chaos-examples")
#: The Redis keys' prefix unless the URL names one (``?key_prefix=``).
REDIS_PREFIX = "payment-chaos:"
#: Seconds to wait for Redis before the run gives up on it.
REDIS_TIMEOUT = 5.0
_FORMS = "a directory, redis://HOST:PORT/DB or github://OWNER/REPO[/ARTIFACT]"
#: Where a ``github://`` database's reads go (Hypothesis' GitHubArtifactDatabase).
GITHUB_API_HOST = "api.github.com"


class Guarded(ExampleDatabase):
    """``database``, with a failure of its store (Redis gone mid-run, a full disk) turned
    into one line naming the option (an InfrastructureError: exit 3, the report says so),
    whether the search or Hypothesis' engine called it."""

    def __init__(self, database: ExampleDatabase) -> None:
        super().__init__()
        self.database = database

    def __repr__(self) -> str:
        return f"Guarded({self.database!r})"

    def save(self, key: bytes, value: bytes) -> None:
        _guarded(lambda: self.database.save(key, value))

    def fetch(self, key: bytes) -> Iterable[bytes]:
        found: list[bytes] = _guarded(lambda: list(self.database.fetch(key)))
        return found

    def delete(self, key: bytes, value: bytes) -> None:
        _guarded(lambda: self.database.delete(key, value))

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        _guarded(lambda: self.database.move(src, dest, value))


def _guarded(do: Callable[[], T]) -> T:
    try:
        return do()
    except Exception as exc:
        if isinstance(exc, OSError) or type(exc).__module__.split(".")[0] == "redis":
            raise InfrastructureError(f"the example database failed "
                                      f"({redactor.text(str(exc))[:120]}): check that "
                                      "--example-db answers, or run without it") from None
        raise


def open_database(url: str, *, allow_hosts: Iterable[str] = ()) -> ExampleDatabase:
    """The example database ``url`` names (see the module docstring); a UsageError
    for a URL of no known form or a host off loopback that ``allow_hosts`` does not
    name (checked before anything connects), an InfrastructureError when Redis does
    not answer."""
    return Guarded(_open(url, allow_hosts))


def check_host(url: str, *, allow_hosts: Iterable[str] = ()) -> None:
    """Refuse, in one line naming the fix, an example database off loopback that the
    user did not allow by name (a directory, or Redis over a Unix socket, is local)."""
    scheme = urlsplit(url).scheme if "://" in url else ""
    if scheme == "github":
        host = GITHUB_API_HOST
    elif scheme in ("redis", "rediss"):
        host = (urlsplit(url).hostname or "localhost").lower()
    else:
        return
    if not is_loopback(host) and host not in {h.strip().lower() for h in allow_hosts}:
        raise UsageError(f"--example-db {redactor.text(url)}: {host} is not on loopback: "
                         f"pass --allow-host {host} (or CHAOS_ALLOW_HOSTS={host}) to share "
                         "an example database there")


def _open(url: str, allow_hosts: Iterable[str]) -> ExampleDatabase:
    scheme = urlsplit(url).scheme if "://" in url else ""
    if scheme in ("redis", "rediss", "unix"):
        check_host(url, allow_hosts=allow_hosts)
        return _redis(url)
    if scheme == "github":
        return _github(url, allow_hosts)
    if scheme:
        raise UsageError(f"--example-db {redactor.text(url)}: unknown scheme {scheme!r}: "
                         f"give {_FORMS}")
    path = Path(url)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--example-db {url} is a file: give a directory (created when "
                         "missing), or a redis:// or github:// URL")
    return DirectoryBasedExampleDatabase(path)


def _redis(url: str) -> ExampleDatabase:
    try:
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase
    except ModuleNotFoundError:
        raise UsageError("--example-db redis://... needs the redis client: "
                         "pip install 'payment-chaos[shard]'") from None
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "key_prefix"), REDIS_PREFIX)
    rest = urlencode([(k, v) for k, v in query if k != "key_prefix"])
    shown = redactor.text(url)
    try:
        client = redis.Redis.from_url(urlunsplit(parts._replace(query=rest)),
                                      socket_connect_timeout=REDIS_TIMEOUT,
                                      socket_timeout=REDIS_TIMEOUT)
        client.ping()
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--example-db {shown}: {redactor.text(str(exc))}: give "
                         "redis://HOST:PORT/DB") from None
    except redis.RedisError as exc:
        raise InfrastructureError(f"--example-db {shown}: Redis did not answer "
                                  f"({redactor.text(str(exc))[:120]}): start it, or fix "
                                  "the URL") from None
    return RedisExampleDatabase(client, key_prefix=prefix.encode())


def _github(url: str, allow_hosts: Iterable[str]) -> ExampleDatabase:
    parts = urlsplit(url)
    names = [parts.netloc, *[p for p in parts.path.split("/") if p]]
    if len(names) not in (2, 3) or not all(names):
        raise UsageError(f"--example-db {url}: write github://OWNER/REPO or "
                         "github://OWNER/REPO/ARTIFACT (default artifact "
                         "hypothesis-example-db)")
    check_host(url, allow_hosts=allow_hosts)
    shared = GitHubArtifactDatabase(names[0], names[1], artifact_name=names[2]) \
        if len(names) == 3 else GitHubArtifactDatabase(names[0], names[1])
    return MultiplexedDatabase(DirectoryBasedExampleDatabase(LOCAL_DIRECTORY),
                               ReadOnlyDatabase(shared))


def database_key(target: Mapping[str, Any]) -> bytes:
    """The key of ``target``'s entries: the same on every shard and every run, whatever
    the tool's version (Hypothesis' own key is a digest of the test's source)."""
    digest = hashlib.sha256(json.dumps(dict(target), sort_keys=True).encode()).hexdigest()
    return f"payment-chaos.search.{digest[:16]}".encode()


class SavedFailures:
    """Failing scenarios of one target kept in an example database (see the module
    docstring): what the search replays first."""

    def __init__(self, database: ExampleDatabase, target: Mapping[str, Any]) -> None:
        self.database = database
        #: the failures' key: one per target, the same on every shard and version
        self.key = database_key(target) + b".failures"

    @staticmethod
    def _value(invariant: str, scenario: Scenario) -> bytes:
        return json.dumps({"invariant": invariant, "scenario": scenario.to_data()},
                          sort_keys=True).encode()

    def fetch(self) -> list[tuple[str, Scenario]]:
        """The saved failures, smallest first; an entry that no longer parses (an older
        tool's scenario) is deleted."""
        found = []
        for value in list(self.database.fetch(self.key)):
            try:
                data = json.loads(value)
                found.append((str(data["invariant"]), Scenario.from_data(data["scenario"])))
            except (ValueError, KeyError, TypeError):
                self.database.delete(self.key, value)
        return sorted(found, key=lambda f: (f[1].requests, len(f[1].buyers), f[0]))

    def save(self, invariant: str, scenario: Scenario) -> None:
        self.database.save(self.key, self._value(invariant, scenario))

    def delete(self, invariant: str, scenario: Scenario) -> None:
        self.database.delete(self.key, self._value(invariant, scenario))
