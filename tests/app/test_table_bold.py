"""Compare's results table bolds the best cell of a row by the numbers it prints: two cells that
read alike ('0.008' beside '0.008') are never told apart by a digit nobody sees, and sharpness
near 0.008 is printed with enough decimals to differ ('0.0081' vs '0.0079')."""

from __future__ import annotations

import random

import numpy as np
from support.records import record

from samon_app.reader import RunInfo, build_run_data
from samon_app.series import SeedGroup
from samon_app.tables import ROW_ACC, _best_marks, _shown, results_table
from samon_core.records import SharpnessRecord

SHARP_ROW = "l_inf sharpness, 1 step, rho = 0.01"


def _group(name: str, accs: list[float], sharps: list[float]) -> tuple[SeedGroup, dict]:
    runs, data = [], {}
    for seed, (acc, sharp) in enumerate(zip(accs, sharps, strict=True)):
        rid = f"{name}-{seed}"
        runs.append(RunInfo(rid, name, name, name, "#000000", "finished", {"seed": seed}, {},
                            {"state": "finished"}, {"final_test_acc": acc}))
        data[rid] = build_run_data(rid, [record(SharpnessRecord, epoch=3, step=30, time=1.0,
                                                steps=1, rho=0.01, value=sharp, m=8, n=16)])
    return SeedGroup(name, name, "#000000", name, runs, name), data


def _table(spec: dict[str, tuple[list[float], list[float]]]):
    groups, data = [], {}
    for name, (accs, sharps) in spec.items():
        g, d = _group(name, accs, sharps)
        groups.append(g)
        data.update(d)
    return results_table(groups, data)


def test_sharpness_near_0008_gets_the_digits_to_differ_and_the_lower_is_bold():
    table = _table({"SAM-all": ([0.5], [0.00812]), "SAM-ON": ([0.5], [0.00788])})
    row = table.rows.index(SHARP_ROW)
    assert table.cells[row] == ["0.0081", "0.0079"]  # not '0.008' beside '0.008'
    assert table.best[row] == [False, True]  # lower = flatter: bold


def test_equal_looking_cells_are_not_bolded():
    # accuracies 84.001% and 84.004% both print 84.00: neither is bold
    table = _table({"SGD": ([0.84001], [0.2]), "SAM-ON": ([0.84004], [0.3])})
    row = table.rows.index(ROW_ACC)
    assert table.cells[row] == ["84.00", "84.00"]
    assert table.best[row] == [False, False]
    # a tie for the best among three: no best; a clear best: bold
    assert _best_marks([["1.0", "1.0", "0.5"]], [True]) == [[False, False, False]]
    assert _best_marks([["1.1", "1.0", "-"]], [True]) == [[True, False, False]]


def test_bold_always_matches_the_printed_numbers():
    """Property over random means, often a rounding step apart: a bold cell prints the best
    value of its row, strictly better than every other printed value."""
    rng = random.Random(3)
    for _ in range(300):
        base = rng.uniform(0.004, 0.012)
        spec = {name: ([rng.uniform(0.3, 0.9)], [base + rng.choice([0, 1e-6, 3e-5, 1e-3])
                                                 * rng.uniform(-1, 1)])
                for name in ("SGD", "SAM-all", "SAM-ON")}
        table = _table(spec)
        for cells, best, name in zip(table.cells, table.best, table.rows, strict=True):
            if name not in (ROW_ACC, SHARP_ROW):
                continue
            shown = [_shown(c) for c in cells]
            for i, bold in enumerate(best):
                others = shown[:i] + shown[i + 1:]
                if bold:
                    assert all(shown[i] > o if name == ROW_ACC else shown[i] < o
                               for o in others), (cells, best)
            sharps = sorted(v for _, (_, (v,)) in spec.items())
            if name == SHARP_ROW and min(np.diff(sharps)) > 2e-6:
                assert len(set(cells)) == 3, cells  # different means print differently
