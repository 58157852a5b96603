"""The reference ticketing service and its catalogue of switchable bugs.

``create_app`` is imported on first use, so reading the catalogue (every
``--bug`` check) does not load the web stack.
"""

from typing import Any

from chaos.reference.bugs import CATALOGUE, Bug, parse_bugs

__all__ = ["CATALOGUE", "Bug", "create_app", "parse_bugs"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from chaos.reference.app import create_app

        return create_app
    raise AttributeError(name)
