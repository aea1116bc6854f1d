"""`dumps_json_document` writes the very text `dumps_decimal` writes for what QuickBooks' JSON
decodes to: the mirror compares the stored text of each object with it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sync.db import EncodedJSON, dumps_decimal, dumps_json_document

_decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None)
_scalars = st.none() | st.booleans() | st.integers() | st.text() | _decimals
_documents = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_documents)
def test_the_same_text_as_dumps_decimal(value: Any) -> None:
    assert dumps_json_document(value) == dumps_decimal(value)


def test_strings_holding_nul_marks_and_exact_amounts() -> None:
    value = {
        "Balance": Decimal("0.00"),
        "Line": [{"Amount": Decimal("-1E+2")}, "\x00x\x00", "\\u0000", Decimal("12.50")],
        "Note": "é\u2028",
    }
    assert dumps_json_document(value) == dumps_decimal(value)
    assert '"Balance":0.00' in dumps_json_document(value)


def test_encoded_text_is_stored_as_it_is() -> None:
    from sqlalchemy.dialects import sqlite

    from sync.db import DecimalJSON

    text = EncodedJSON(dumps_json_document({"Id": "1", "TotalAmt": Decimal("5.10")}))
    stored = DecimalJSON().process_bind_param(text, sqlite.dialect())
    assert stored == '{"Id":"1","TotalAmt":5.10}' and type(stored) is str
