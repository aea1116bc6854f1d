"""Decimal-exact JSON for QuickBooks bodies.

Amounts travel as JSON numbers; parsing them as float would turn 0.10 + 0.20 into 0.30000000000000004
on someone's bank balance. Everything QuickBooks sends is parsed with Decimal, and every body Oodaloo
sends is refused if a float slipped into it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import simplejson


class FloatInBodyError(TypeError):
    """A float reached a QuickBooks request body, where only Decimal amounts are allowed."""


def loads(text: str | bytes) -> Any:
    """Parse JSON with every non-integer number as ``decimal.Decimal``."""
    return simplejson.loads(text, use_decimal=True)


def dumps(obj: Any) -> str:
    """Serialise ``obj`` with Decimals written exactly; floats are refused (see ``FloatInBodyError``)."""
    _refuse_floats(obj, "body")
    return str(simplejson.dumps(obj, use_decimal=True, ensure_ascii=False))


def _refuse_floats(obj: Any, where: str) -> None:
    if isinstance(obj, float):
        raise FloatInBodyError(
            f"{where} is the float {obj!r}: QuickBooks amounts must be decimal.Decimal "
            "(or int) so that no cent is lost; build the value with Decimal('...')"
        )
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            _refuse_floats(value, f"{where}.{key}")
    elif isinstance(obj, Sequence) and not isinstance(obj, str | bytes):
        for index, value in enumerate(obj):
            _refuse_floats(value, f"{where}[{index}]")
