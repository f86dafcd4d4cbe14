"""The loss-landscape slices of a comparison's runs (``landscape`` records) as the pages show
them, and the sentence that reads them.

Each run's 1D slice is the plain cross-entropy at w + a d for offsets a in [-r, r] along a
filter-normalised direction d (samon_core/train/landscape.py). How much the loss rises at the
ends of the slice, ``rise = mean(L(-r), L(r)) - L(0)``, is a simple width measure: the smaller,
the flatter the minimum along that direction. The sentence compares the runs' rises and says
when the runs are too few, or the differences too small, to call one minimum flatter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from samon_app.reader import RunData, RunInfo

# Rises closer than this share of the larger one are called "about as flat".
SAME_SHARE = 0.1


@dataclass(frozen=True)
class Slice:
    """One run's slice along one direction on one split."""

    run_id: str
    label: str
    color: str
    offsets: tuple[float, ...]
    losses: tuple[float, ...]

    @property
    def rise(self) -> float:
        """Mean loss at the two ends minus the loss at the centre (the trained weights)."""
        centre = self.losses[len(self.losses) // 2]
        return (self.losses[0] + self.losses[-1]) / 2 - centre


def slices(infos: Sequence[RunInfo], data: Mapping[str, RunData], direction: str,
           split: str) -> list[Slice]:
    """The slices of ``infos`` along ``direction`` ("random" | "gradient") on ``split``."""
    out = []
    for info in infos:
        d = data.get(info.run_id)
        if d is None:
            continue
        for rec in d.records:
            if (rec.get("kind") == "landscape" and rec.get("direction") == direction
                    and rec.get("split") == split and rec.get("losses")):
                out.append(Slice(info.run_id, info.label, info.color,
                                 tuple(rec["offsets"]), tuple(rec["losses"])))
    return out


def flatness_sentence(found: Sequence[Slice], direction: str) -> str:
    """What the user's slices show (module doc), or why they show nothing yet."""
    if not found:
        return ("No slices yet: runs compute them after their last epoch when the setting "
                "'landscape_points' is above 0 (the CPU presets do).")
    if len(found) == 1:
        s = found[0]
        return (f"Only one run has a slice so far ({s.label}: the loss rises by {s.rise:.3f} at "
                "the ends). Compare needs two.")
    ranked = sorted(found, key=lambda s: s.rise)
    flat, sharp = ranked[0], ranked[-1]
    where = "a random direction" if direction == "random" else "the gradient direction"
    if sharp.rise <= 0 or (sharp.rise - flat.rise) <= SAME_SHARE * abs(sharp.rise):
        return (f"Along {where} your runs' minima are about as flat as each other (rises "
                f"{flat.rise:.3f} to {sharp.rise:.3f}): this slice does not separate them.")
    return (f"Along {where}, {flat.label}'s minimum is the flattest in your runs (the loss "
            f"rises by {flat.rise:.3f} at the ends), {sharp.label}'s the sharpest "
            f"({sharp.rise:.3f}). One random slice is one direction among millions: the "
            "sharpness tab measures the worst direction.")
