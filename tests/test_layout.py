"""The test folders have no ``__init__.py`` and several hold a ``conftest.py``: pytest imports each
as the module ``conftest``, so ``from conftest import X`` gets whichever folder's conftest came
last, which depends on the order of the command-line arguments (``pytest tests/runway tests/sync``
failed while ``pytest tests/sync tests/runway`` passed). Shared helpers live in modules with their
own names (``runway_env``, ``db_conftest``, ``sync_harness``, ``service_env``, ``conftest_email``).
"""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
_CONFTEST_IMPORT = re.compile(r"^\s*(from\s+conftest\s+import|import\s+conftest\b)", re.M)


def test_no_test_module_imports_a_conftest_by_name() -> None:
    offenders = [
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("*.py")
        if _CONFTEST_IMPORT.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_helper_module_names_are_unique_across_test_folders() -> None:
    names = [p.name for p in TESTS.rglob("*.py") if p.name != "conftest.py"]
    assert sorted({n for n in names if names.count(n) > 1}) == []
