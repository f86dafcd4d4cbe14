"""The paper's numbers as the Home page shows them: Markdown tables and metric texts built from
``samon_core.paper`` (the one home of every number taken from the paper), never typed again.
Beside them, labelled as such, the lab's own FLOP estimate of a step (``runs.estimate``)."""

from __future__ import annotations

from samon_core import paper
from samon_core.catalog.methods import OPTIMIZER_NAMES, variant_name
from samon_core.paper import method_name
from samon_core.runs.estimate import STEP_COST_F, STEP_COST_LABEL

# The methods of the paper's WRN-28-10 tables, by method family key (named by ``method_name``).
METHODS = ("base", "all", "norm")


def _stat(s: paper.Stat, digits: int = 2, bold: bool = False) -> str:
    text = f"{s.mean:.{digits}f} ± {s.std:.{digits if digits < 2 else 1}f}"
    return f"**{s.mean:.{digits}f}** ± {s.std:.{digits if digits < 2 else 1}f}" if bold else text


def accuracy_metrics() -> list[tuple[str, str, str | None, str]]:
    """(label, value, delta vs SGD, help) per method: the headline test accuracies."""
    acc = paper.TEST_ACCURACY
    base = acc["base"].mean
    out = []
    for m in METHODS:
        delta = None if m == "base" else f"{acc[m].mean - base:+.2f} vs {method_name('base')}"
        out.append((method_name(m), f"{acc[m].mean:.2f}%", delta, f"Test accuracy, mean of "
                    f"three models (± {acc[m].std})."))
    return out


# The label of the cost metric: it stands among the paper's numbers but is not one of them.
STEP_COST_METRIC = "Cost per step (lab estimate)"


def step_cost_text() -> str:
    f = STEP_COST_F
    return f"≈ {f['norm']:g}F vs {f['all']:g}F"


def step_cost_help() -> str:
    f = STEP_COST_F
    return (f"{STEP_COST_LABEL[0].upper()}{STEP_COST_LABEL[1:]}, not a number from the paper "
            f"(its poster reports measured savings). Forward-pass units: SGD {f['base']:g}F, "
            f"SAM-all {f['all']:g}F; SAM-ON's ascent pass needs only the norm parameters' "
            f"gradients, about {f['norm']:g}F in all.")


def _samon_sparsity() -> float:
    return paper.SPARSE_BY_KEY["norm"].sparsity


def perturbed_text() -> str:
    """The share of the WRN-28-10's weights SAM-ON perturbs ('0.05%'), from the same row of
    ``paper.SPARSE_PERTURBATION`` as the sparsity table beside it (99.95% not perturbed)."""
    return _pct(1 - _samon_sparsity())


def sparsity_help() -> str:
    return (f"gamma and beta of the norm layers: SAM-ON perturbs {perturbed_text()} of the "
            f"WRN-28-10's weights and leaves {_pct(_samon_sparsity())} alone (its sparsity)")


def sparsity_sentence() -> str:
    """What the sparsities of the table are: SAM-ON's follows from the network (its norm layers'
    share), the other methods' are settings chosen to match it (or not)."""
    s = _samon_sparsity()
    others = list(dict.fromkeys(c.method for c in paper.SPARSE_PERTURBATION
                                if c.key not in ("all", "norm") and c.sparsity == s))
    return (f"SAM-ON's {_pct(s)} is no setting: it is the share of the WRN-28-10's weights that "
            f"are not gamma or beta ({perturbed_text()} are). For {' and '.join(others)} the "
            "sparsity is a setting of the method, chosen here to match SAM-ON's.")


def _pct(fraction: float) -> str:
    """'0.05%', '99.95%', '50%': percent with the digits the paper's sparsities need."""
    return f"{100 * fraction:.2f}".rstrip("0").rstrip(".") + "%"


def sharpness_table() -> str:
    """Accuracy and the four sharpness probes per method; the best (lowest sharpness, highest
    accuracy) in bold."""
    acc = paper.TEST_ACCURACY
    best_acc = max(METHODS, key=lambda m: acc[m].mean)
    rows = ["| | " + " | ".join(map(method_name, METHODS)) + " |",
            "|---|" + "---|" * len(METHODS),
            "| Test accuracy (%) | " + " | ".join(
                _stat(acc[m], 2, m == best_acc) for m in METHODS) + " |"]
    for (steps, rho), values in paper.SHARPNESS.items():
        flattest = min(METHODS, key=lambda m: values[m].mean)
        name = f"{steps} step{'s' if steps > 1 else ''}, rho = {rho:g}"
        rows.append(f"| {name} | " + " | ".join(
            f"{'**' if m == flattest else ''}{values[m].mean:.3f}{'**' if m == flattest else ''}"
            f" ± {values[m].std:.3f}" for m in METHODS) + " |")
    return "\n".join(rows)


# Marks a column label the poster does not print over that column (``SparseResult.inferred``).
INFERRED_MARK = "†"


def table_settings_note() -> str:
    """What the poster leaves open about its WRN-28-10 table: the augmentation (inferred) and
    the rho of its SAM runs (not known)."""
    return f"{paper.TABLE_AUGMENT_NOTE} {paper.TABLE_RHO_NOTE}"


def sparsity_table() -> str:
    """The sparse-perturbation comparison, one column per (method, sparsity); an inferred label
    carries ``INFERRED_MARK`` (``sparsity_note`` says why)."""
    cols = paper.SPARSE_PERTURBATION
    best = max(cols, key=lambda c: c.accuracy.mean)
    head = "| | " + " | ".join(
        c.method + (INFERRED_MARK if c.inferred else "") for c in cols) + " |"
    sparsity = "| Sparsity | " + " | ".join(f"{c.sparsity:.2%}".replace(".00%", "%")
                                            for c in cols) + " |"
    accuracy = "| Test accuracy (%) | " + " | ".join(
        _stat(c.accuracy, 2, c is best) for c in cols) + " |"
    return "\n".join([head, "|---|" + "---|" * len(cols), sparsity, accuracy])


def sparsity_note() -> str:
    """The footnote of ``sparsity_table``: which label is the lab's reading, and why."""
    inferred = [c for c in paper.SPARSE_PERTURBATION if c.inferred]
    if not inferred:
        return ""
    cols = ", ".join(f"{c.method} at {c.sparsity:.2%}" for c in inferred)
    note = paper.SSAM_F_INFERRED_NOTE
    return f"{INFERRED_MARK} {cols}: {note[0].lower()}{note[1:]}"


def rho_ratio_text() -> str:
    """How many times SAM-all's best rho SAM-ON's is on the paper's figure, per variant, from
    ``paper.DEFAULT_RHO`` (so the range is never typed): 'SAM-ON's best rho is 2 to 10 times
    SAM-all's (SAM 5x: 1.0 vs 0.2; ...)'."""
    ratios = paper.rho_ratios()
    lo, hi = min(ratios.values()), max(ratios.values())
    span = f"{lo:g}" if lo == hi else f"{lo:g} to {hi:g}"
    parts = [f"{variant_name(key)} {r:g}x: {paper.DEFAULT_RHO[key]['norm']} vs "
             f"{paper.DEFAULT_RHO[key]['all']}" for key, r in ratios.items()]
    return f"SAM-ON's best rho is {span} times SAM-all's ({'; '.join(parts)})"


def playground_rho_note() -> str:
    """The Playground's note on rho: one rho for all methods there, the paper's ratios, and why
    elementwise ASAM's rhos are larger."""
    asam = paper.DEFAULT_RHO[("elementwise", "l2")]
    return (f"One ρ serves all methods here. In the paper {rho_ratio_text()}; elementwise "
            f"ASAM's rhos are larger ({asam['all']} and {asam['norm']}) because its ball is "
            "relative to |w|.")


def vit_sentence() -> str:
    v, lion = paper.VIT_S32_IMAGENET_LION, OPTIMIZER_NAMES["lion"]
    return (f"And beyond ResNets: a ViT-S/32 on ImageNet with **{lion}** as the base optimizer "
            f"reaches {v['base']:.2f}% ({method_name('base', lion)}), {v['all']:.2f}% "
            f"({method_name('all')}) and **{v['norm']:.2f}%** ({method_name('norm')}).")
