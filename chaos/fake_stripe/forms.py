"""Decode Stripe's form encoding: nested keys as the official clients send them.

    line_items[0][price_data][unit_amount]=2500   -> {"line_items": [{"price_data": {"unit_amount": "2500"}}]}
    metadata[order_id]=42                          -> {"metadata": {"order_id": "42"}}
    expand[]=line_items  /  expand[0]=line_items   -> {"expand": ["line_items"]}

Values stay strings, as on the wire; endpoints convert what they read. A hash
whose keys are exactly ``0..n-1`` is a list (stripe-python and stripe-node
both send lists with explicit indices). The top level is always a hash.

Anything the encoding cannot express (a key that is both a value and a hash,
unbalanced brackets, more than :data:`MAX_FIELDS` fields, nesting deeper than
:data:`MAX_DEPTH`) raises :class:`FormError` naming the parameter, which the
API answers as a 400 in Stripe's error shape.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

#: Fields one request may carry; Stripe's own requests stay far below this.
MAX_FIELDS = 2000
#: Levels of brackets one key may have (``a[b][c][d]`` is 4).
MAX_DEPTH = 8

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")


class FormError(ValueError):
    """A parameter name the encoding cannot express; ``param`` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def decode(body: str) -> dict[str, Any]:
    """The nested parameters of a form-encoded body or query string."""
    try:
        pairs = parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise FormError("", f"Too many parameters: at most {MAX_FIELDS} fields per request.") from None
    root: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if not match:
            raise FormError(key, f"Invalid parameter name: {key!r}")
        path = [match.group(1), *_PART.findall(match.group(2))]
        if len(path) > MAX_DEPTH + 1:
            raise FormError(key, f"Parameter {key!r} is nested deeper than {MAX_DEPTH} levels")
        _put(root, path, value, key)
    return {k: _lists(v) for k, v in root.items()}


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
    if converted and all(k.isascii() and k.isdigit() and k == str(int(k)) for k in converted):
        indices = sorted(int(k) for k in converted)
        if indices == list(range(len(indices))):
            return [converted[str(i)] for i in indices]
    return converted
