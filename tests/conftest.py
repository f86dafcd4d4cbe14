"""Fixtures shared by the test modules (helpers they import live in tests/support/)."""

from __future__ import annotations

import sys
from pathlib import Path

# tests/support is imported as ``support`` by the test modules.
sys.path.insert(0, str(Path(__file__).resolve().parent))
