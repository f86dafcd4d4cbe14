"""Numbers as the pages show them: durations, percentages, mean ± std over seeds.

Also ``finite``: whether a value read from a metrics record is a real, finite number (records
may hold None, NaN or a bool where a number is expected).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def finite(v: Any) -> bool:
    """True for an int or float that is not a bool, NaN or infinite."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def format_duration(seconds: float | None) -> str:
    """'45 s', '3 min', '1 h 20 min', '2 d 4 h'; '?' for None / NaN."""
    if seconds is None or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "?"
    s = max(0.0, float(seconds))
    if s < 90:
        return f"{max(1, round(s))} s"
    if s < 90 * 60:
        return f"{round(s / 60)} min"
    if s < 48 * 3600:
        h, m = divmod(round(s / 60), 60)
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(round(s / 3600), 24)
    return f"{d} d {h} h" if h else f"{d} d"


def format_pct(frac: float | None, digits: int = 1) -> str:
    """0.8419 -> '84.2%'; '-' for None / NaN."""
    if frac is None or not isinstance(frac, (int, float)) or not math.isfinite(frac):
        return "-"
    return f"{100 * frac:.{digits}f}%"


def seeds_text(first: int, n: int) -> str:
    """'seed 0' for one seed, 'seeds 0-2' for three: the seeds ``first .. first + n - 1``."""
    return f"seed {first}" if n == 1 else f"seeds {first}-{first + n - 1}"


def mean_std_text(values: Sequence[float], scale: float = 1.0, digits: int = 2) -> str:
    """'84.19 ± 0.20' (sample std; '84.19' for one value); '-' for none."""
    vals = [float(v) * scale for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return "-"
    m = sum(vals) / len(vals)
    if len(vals) == 1:
        return f"{m:.{digits}f}"
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))
    return f"{m:.{digits}f} ± {sd:.{digits}f}"

