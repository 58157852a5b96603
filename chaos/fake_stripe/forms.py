"""Decode Stripe's form encoding: nested keys as the official clients send them.

    line_items[0][price_data][unit_amount]=2500   -> {"line_items": [{"price_data": {"unit_amount": "2500"}}]}
    metadata[order_id]=42                          -> {"metadata": {"order_id": "42"}}
    expand[]=line_items  /  expand[0]=line_items   -> {"expand": ["line_items"]}

Values stay strings, as on the wire; endpoints convert what they read.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


class FormError(ValueError):
    """A parameter name the encoding cannot express; ``param`` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def decode(body: str) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True, strict_parsing=False):
        match = _KEY.match(key)
        if not match:
            raise FormError(key, f"Invalid parameter name: {key!r}")
        path = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        _put(root, path, value, key)
    return _lists(root)


def _put(node: dict[str, Any], path: list[str], value: str, key: str) -> None:
    for i, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise FormError(key, f"Parameter {key!r} mixes a value and nested keys")
        if path[i + 1] == "":  # "a[]": append
            path[i + 1] = str(len(child))
        node = child
    last = path[-1]
    if isinstance(node.get(last), dict):
        raise FormError(key, f"Parameter {key!r} mixes a value and nested keys")
    node[last] = value


def _lists(node: Any) -> Any:
    """Dicts whose keys are 0..n-1 become lists, recursively."""
    if not isinstance(node, dict):
        return node
    converted = {k: _lists(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        indices = sorted(int(k) for k in converted)
        if indices == list(range(len(indices))):
            return [converted[str(i)] for i in indices]
    return converted
