"""The loss-landscape slices of a comparison's runs (``landscape`` records) as the pages show
them, and the sentences that read them.

Each run's 1D slice is the plain cross-entropy at w + a d for offsets a in [-r, r] along a
filter-normalised direction d (samon_core/train/landscape.py). How much the loss rises at the
ends of the slice, ``rise = mean(L(-r), L(r)) - L(0)``, is a simple width measure: the smaller,
the flatter the minimum along that direction. The sentence compares the runs' rises and says
when the runs are too few, or the differences too small, to call one minimum flatter.

L(0) is the point of the slice nearest offset 0: an even number of points (``landscape_points``)
has no point at 0 (10 points over [-1, 1]: the nearest is at +-0.111), and the sentence then says
where its centre is. A slice is measured on a fixed set of images (the record's ``n``: the first
1,024 test images, or the sharpness probe's training images), not on the whole test set, so its
value at 0 differs from the run's recorded ``test_ce``; ``images_sentence`` says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from samon_app.reader import RunData, RunInfo
from samon_core.catalog import DATASET_SIZES

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
    n: int | None = None  # images the slice was measured on (the record's ``n``)
    split: str = ""  # "train" | "test": which images
    of: int | None = None  # images in the run's test set (test slices; None: not known)

    @property
    def centre(self) -> int:
        """Index of the point nearest offset 0 (the trained weights, when the slice has it)."""
        return min(range(len(self.offsets)), key=lambda i: abs(self.offsets[i]))

    @property
    def centre_offset(self) -> float:
        return self.offsets[self.centre]

    @property
    def rise(self) -> float:
        """Mean loss at the two ends minus the loss at the centre (the point nearest 0)."""
        return (self.losses[0] + self.losses[-1]) / 2 - self.losses[self.centre]


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def n_test_images(config: Mapping) -> int | None:
    """Images in a run's test set (its dataset's, or ``test_subset`` of them); None when the
    stored config does not say."""
    sizes = DATASET_SIZES.get(str(config.get("dataset")))
    if sizes is None:
        return None
    subset = _count(config.get("test_subset"))
    return min(subset, sizes[1]) if subset else sizes[1]


def slices(infos: Sequence[RunInfo], data: Mapping[str, RunData], direction: str,
           split: str) -> list[Slice]:
    """The slices of ``infos`` along ``direction`` ("random" | "gradient") on ``split``."""
    out = []
    for info in infos:
        d = data.get(info.run_id)
        if d is None:
            continue
        of = n_test_images(info.config) if split == "test" else None
        for rec in d.records:
            if (rec.get("kind") == "landscape" and rec.get("direction") == direction
                    and rec.get("split") == split and rec.get("losses")):
                out.append(Slice(info.run_id, info.label, info.color,
                                 tuple(rec["offsets"]), tuple(rec["losses"]),
                                 _count(rec.get("n")), split, of))
    return out


def images_sentence(found: Sequence[Slice]) -> str:
    """How many images the slices were measured on and, for test slices on part of the test
    set, that their loss at offset 0 is not the run's recorded test loss (module doc); "" when
    no slice says."""
    counts = sorted({(s.n, s.of) for s in found if s.n})
    if not counts:
        return ""
    if not any(s.split == "test" for s in found):
        many = " or ".join(f"{n:,}" for n, _ in counts)
        return (f"Each slice is measured on the sharpness probe's {many} training images, "
                "without augmentation.")
    parts = []
    for n, of in counts:
        if of is None:
            parts.append(f"the first {n:,} test images")
        elif n >= of:
            parts.append(f"all {of:,} test images")
        else:
            parts.append(f"the first {n:,} of {of:,} test images")
    text = f"Each slice is measured on {' or '.join(parts)}"
    if any(of is None or n < of for n, of in counts):
        text += (": on part of the test set, the loss at offset 0 differs from the run's "
                 "recorded test loss (all its test images)")
    return text + "."


def _centre_note(found: Sequence[Slice]) -> str:
    """Where the 'centre' is when a slice has no point at offset 0 (an even number of points)."""
    off = sorted({round(s.centre_offset, 3) for s in found if s.centre_offset != 0})
    if not off:
        return ""
    return (" (the slices have no point at offset 0: their centre is the point nearest it, at "
            + " or ".join(f"{o:+.3f}" for o in off) + ")")


def flatness_sentence(found: Sequence[Slice], direction: str) -> str:
    """What the user's slices show (module doc), or why they show nothing yet; then how many
    images they were measured on (``images_sentence``)."""
    text = _flatness(found, direction)
    images = images_sentence(found)
    return f"{text} {images}" if images else text


def _flatness(found: Sequence[Slice], direction: str) -> str:
    if not found:
        return ("No slices yet: runs compute them after their last epoch when the setting "
                "'landscape_points' is above 0 (the CPU presets do).")
    centre = _centre_note(found)
    if len(found) == 1:
        s = found[0]
        return (f"Only one run has a slice so far ({s.label}: the loss rises by {s.rise:.3f} at "
                f"the ends{centre}). Compare needs two.")
    ranked = sorted(found, key=lambda s: s.rise)
    flat, sharp = ranked[0], ranked[-1]
    where = "a random direction" if direction == "random" else "the gradient direction"
    if sharp.rise <= 0 or (sharp.rise - flat.rise) <= SAME_SHARE * abs(sharp.rise):
        return (f"Along {where} your runs' minima are about as flat as each other (rises "
                f"{flat.rise:.3f} to {sharp.rise:.3f}{centre}): this slice does not separate "
                "them.")
    return (f"Along {where}, {flat.label}'s minimum is the flattest in your runs (the loss "
            f"rises by {flat.rise:.3f} at the ends{centre}), {sharp.label}'s the sharpest "
            f"({sharp.rise:.3f}). One random slice is one direction among millions: the "
            "sharpness tab measures the worst direction.")
