"""One error tree for the whole tool, mapped to exit codes in one place.

    ChaosError                     exit 3 unless a subclass says otherwise
     ├── UsageError                exit 2: bad command line or config; nothing was sent
     └── InfrastructureError       exit 3: the tool's own parts (database, ports, services)
          └── TargetError          exit 3: the system under test (down, hung, crashed, malformed)

An invariant that breaks is not an error: it is the tool's finding (exit 1).
Every message is one line that names what went wrong and how to fix it.
"""

from __future__ import annotations

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_INFRASTRUCTURE = 3


class ChaosError(Exception):
    """Base of every error the tool reports to the user as one line."""

    exit_code = EXIT_INFRASTRUCTURE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(ChaosError):
    """The command line or the config is wrong: fix it and run again."""

    exit_code = EXIT_USAGE


class InfrastructureError(ChaosError):
    """A part the tool runs or connects to (database, port, service) failed."""

    exit_code = EXIT_INFRASTRUCTURE


class TargetError(InfrastructureError):
    """The system under test is unreachable, hung, crashed or answered nonsense."""
