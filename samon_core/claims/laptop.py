"""What a laptop showed: the claims' verdicts at the cpu size as the lab measured them, part by
part, in numbers, from the measurement's two homes: the claims judged from seeds get their
claim's rule applied to the per-seed values of ``calibration.CPU_SEEDS`` (as the claims' cpu
notes do, ``data.cpu_measured``), the claims judged from lockstep step times (cost, blocks) come
from ``laptop_verdicts.json`` (their verdict function's parts on the same runs, written by
``bench/laptop_verdicts.py``: step-time blocks are not per-seed values).

Home leads with the comparisons these records decide, and Live's verdict card puts those claims
first: what a student's laptop can settle comes from the measurement, never from a sentence typed
beside it. A record is checked when built: each part's status must follow from its interval
(holds: the 95% interval clear of the claim's bound; refuted: on the wrong side of it) and each
verdict from its parts (``stats``' combination), so a hand-edited number that disagrees with its
word is refused. No torch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from samon_core.claims import stats
from samon_core.claims.cost import STEP_TIME_PAIRS
from samon_core.claims.rules import METRICS

PATH = Path(__file__).with_name("laptop_verdicts.json")
STEP_TIME = "step-time"  # the metric of a part judged from lockstep step times (a ratio)


class LaptopPart(BaseModel):
    """One deciding comparison, A against B, as measured: ``effect`` A - B on ``metric`` (a
    ``rules.METRICS`` key), or A's step time over B's for ``STEP_TIME``; ``low`` / ``high`` its
    95% interval."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str
    a: str
    b: str
    kind: Literal["superiority", "non-inferiority"]
    margin: float = Field(ge=0.0)
    effect: float
    low: float
    high: float
    status: Literal["holds", "refuted", "open"]
    test: str

    @property
    def step_time(self) -> bool:
        return self.metric == STEP_TIME

    @property
    def bound(self) -> float:
        """The line the interval must clear: a ratio of 1, else -margin."""
        return 1.0 if self.step_time else -self.margin

    @property
    def decided(self) -> bool:
        return self.status in (stats.HOLDS, stats.REFUTED)

    @property
    def clarity(self) -> float:
        """How far the effect lies from the bound, in half-widths of its interval."""
        half = max((self.high - self.low) / 2, 1e-12)
        return abs(self.effect - self.bound) / half

    @model_validator(mode="after")
    def _status_follows_the_numbers(self) -> LaptopPart:
        if self.metric != STEP_TIME and self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}")
        if not self.low <= self.effect <= self.high:
            raise ValueError(f"effect {self.effect} outside its interval [{self.low}, "
                             f"{self.high}]")
        # the claim: A above B (above -margin); a step time: A's below B's (ratio below 1)
        clear = self.high < 1.0 if self.step_time else self.low > -self.margin
        wrong = self.low > 1.0 if self.step_time else self.high < -self.margin
        if (self.status == stats.HOLDS) != clear:
            raise ValueError(f"{self.a} vs {self.b}: status {self.status!r} but the interval "
                             f"[{self.low}, {self.high}] is {'' if clear else 'not '}clear of "
                             f"{self.bound}")
        if self.status == stats.REFUTED and not wrong:
            raise ValueError(f"{self.a} vs {self.b}: refuted, but the interval does not lie "
                             "beyond its bound")
        return self


class LaptopVerdict(BaseModel):
    """One claim's verdict at the cpu size: its deciding parts and the seeds they rest on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    verdict: Literal["consistent", "not consistent", "inconclusive"]
    seeds: tuple[int, ...] = Field(min_length=2)
    parts: tuple[LaptopPart, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _verdict_follows_the_parts(self) -> LaptopVerdict:
        statuses = {p.status for p in self.parts}
        want = (stats.CONSISTENT if statuses == {stats.HOLDS} else stats.NOT_CONSISTENT
                if stats.REFUTED in statuses else stats.INCONCLUSIVE)
        if self.verdict != want:
            raise ValueError(f"verdict {self.verdict!r}, but its parts make it {want!r}")
        return self

    @property
    def decided(self) -> tuple[LaptopPart, ...]:
        """The parts the measurement settled (held or refuted)."""
        return tuple(p for p in self.parts if p.decided)


class LaptopRecord(BaseModel):
    """The cpu size's measured verdicts, with where and how they were measured."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: Literal["cpu"]
    measured: str  # the date
    machine: str
    command: str
    runs: str  # which runs, in words
    claims: dict[str, LaptopVerdict]

    @model_validator(mode="after")
    def _claims_and_methods_exist(self) -> LaptopRecord:
        from samon_core.claims.data import BY_ID

        for claim_id, v in self.claims.items():
            claim = BY_ID.get(claim_id)
            if claim is None:
                raise ValueError(f"unknown claim {claim_id!r}")
            for p in v.parts:
                if {p.a, p.b} - set(claim.methods):
                    raise ValueError(f"{claim_id}: {p.a} vs {p.b} are not its methods")
                if p.step_time != (claim_id in STEP_TIME_PAIRS):
                    raise ValueError(f"{claim_id}: a step-time part is only a step-time "
                                     "claim's")
        return self

    def shown(self) -> list[tuple[str, LaptopVerdict]]:
        """The claims with a part the measurement settled, the clearest first (the largest
        distance of a settled part from its bound, in half-widths of its interval)."""
        found = [(c, v) for c, v in self.claims.items() if v.decided]
        return sorted(found, key=lambda cv: -max(p.clarity for p in cv[1].decided))


class BadLaptopRecord(ValueError):
    """The record is missing or does not check (one line: the file and the reason)."""


def parse(text: str) -> LaptopRecord:
    """The record in ``text`` (JSON); ``BadLaptopRecord`` naming the first problem."""
    try:
        return LaptopRecord.model_validate(json.loads(text))
    except (ValueError, ValidationError) as exc:
        first = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise BadLaptopRecord(f"{PATH.name}: {first}") from None


def seeded(claim_id: str) -> LaptopVerdict | None:
    """The claim's verdict at the cpu size on the per-seed values measured there
    (``calibration.CPU_SEEDS``, paired by seed as the claim's runs are), by its own rule; None
    where a deciding part's values were not recorded (a metric the cpu size never measures,
    ``verdicts.OPTIONAL_METRICS``, is left out, as the verdict leaves it out)."""
    from samon_core.claims.calibration import CPU_SEEDS
    from samon_core.claims.parts import evaluate
    from samon_core.claims.results import Values
    from samon_core.claims.rules import RULES
    from samon_core.claims.verdicts import OPTIONAL_METRICS

    specs = []
    for p in RULES.get(claim_id, ()):
        if not p.decides or (p.metric in OPTIONAL_METRICS and p.metric not in CPU_SEEDS):
            continue
        if {p.a, p.b} - set(CPU_SEEDS.get(p.metric, {})):
            return None
        specs.append(p)
    if not specs:
        return None

    def values(metric: str, method: str) -> Values:
        v = CPU_SEEDS[metric][method]
        return Values(method, dict(enumerate(v)), (), dict.fromkeys(range(len(v)), "cpu"))

    parts = []
    for p in specs:
        r = evaluate(p, values(p.metric, p.a), values(p.metric, p.b), "cpu", len(specs))
        if r.decisions is None:
            return None  # one seed: no verdict, nothing measured
        parts.append(LaptopPart(metric=p.metric, a=p.a, b=p.b, kind=p.test, margin=p.margin,
                                effect=r.effect, low=float(r.decisions.low),
                                high=float(r.decisions.high), status=r.status, test=r.test))
    n = min(len(CPU_SEEDS[p.metric][m]) for p in specs for m in (p.a, p.b))
    verdict = str(stats.combine([np.array(p.status, dtype=object) for p in parts])[()])
    return LaptopVerdict(verdict=verdict, seeds=tuple(range(n)), parts=tuple(parts))


@lru_cache(maxsize=1)
def load() -> LaptopRecord:
    """The lab's record: the step-time claims of ``PATH`` (read once) with every claim judged
    from seeds that ``seeded`` can judge; ``BadLaptopRecord`` when the file is missing or
    anything fails its checks."""
    from samon_core.claims.data import CLAIM_IDS

    try:
        text = PATH.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadLaptopRecord(f"{PATH.name}: {exc.strerror or exc}") from None
    record = parse(text)
    if set(record.claims) - set(STEP_TIME_PAIRS):
        raise BadLaptopRecord(f"{PATH.name}: only the step-time claims live there; the others' "
                              "values are calibration.CPU_SEEDS")
    try:
        found = {c: v for c in CLAIM_IDS if (v := seeded(c)) is not None}
    except (ValueError, ValidationError) as exc:
        raise BadLaptopRecord(f"calibration.CPU_SEEDS: {exc}") from None
    claims = {c: found.get(c) or record.claims[c] for c in CLAIM_IDS
              if c in found or c in record.claims}
    return record.model_copy(update={"claims": claims})


def record_of(verdict: dict, seeds: Sequence[int]) -> LaptopVerdict | None:
    """A claim's ``Verdict.as_dict()`` as a record (its deciding parts; None for a verdict with
    none, or no verdict): what ``bench/laptop_verdicts.py`` writes."""
    from samon_core.claims.results import method_name
    from samon_core.claims.rules import RULES

    claim = verdict["claim"]
    if verdict["verdict"] == stats.NO_VERDICT or verdict.get("provisional"):
        return None
    if claim in STEP_TIME_PAIRS:
        keys = {(STEP_TIME, *(method_name(m) for m in STEP_TIME_PAIRS[claim])):
                (STEP_TIME, *STEP_TIME_PAIRS[claim])}
    else:
        keys = {(METRICS[s.metric].name, method_name(s.a), method_name(s.b)): (s.metric, s.a, s.b)
                for s in RULES[claim]}
    parts = []
    for p in verdict["parts"]:
        if not p.get("decides", True) or p.get("ci95") is None:
            continue
        name = STEP_TIME if claim in STEP_TIME_PAIRS else p["metric"]
        metric, a, b = keys[(name, p["a"], p["b"])]
        parts.append(LaptopPart(metric=metric, a=a, b=b, kind=p["kind"],
                                margin=float(p["margin"]), effect=float(p["effect"]),
                                low=float(p["ci95"][0]), high=float(p["ci95"][1]),
                                status=p["status"], test=str(p["test"])))
    if not parts:
        return None
    return LaptopVerdict(verdict=verdict["verdict"], seeds=tuple(seeds), parts=tuple(parts))
