"""The repository's folders as the tests see them, written once here: test modules sit at
different depths under tests/ (folders that mirror the packages), so none computes the
repository root from its own ``__file__``.
"""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]  # tests/: on sys.path (conftest.py), holds support/
REPO = TESTS.parent
DATA = TESTS / "data"  # files the tests read: a files-era store, the fair queue's answers
BENCH = REPO / "bench"  # benchmarks some tests run small; bench/ is no package
