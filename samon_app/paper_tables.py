"""The paper's numbers as the Home page shows them: Markdown tables and metric texts built from
``samon_core.paper`` (the one home of every number taken from the paper), never typed again."""

from __future__ import annotations

from samon_core import paper

METHODS = ("SGD", "SAM-all", "SAM-ON")


def _stat(s: paper.Stat, digits: int = 2, bold: bool = False) -> str:
    text = f"{s.mean:.{digits}f} ± {s.std:.{digits if digits < 2 else 1}f}"
    return f"**{s.mean:.{digits}f}** ± {s.std:.{digits if digits < 2 else 1}f}" if bold else text


def accuracy_metrics() -> list[tuple[str, str, str | None, str]]:
    """(label, value, delta vs SGD, help) per method: the headline test accuracies."""
    acc = paper.TEST_ACCURACY
    base = acc["SGD"].mean
    out = []
    for m in METHODS:
        delta = None if m == "SGD" else f"{acc[m].mean - base:+.2f} vs SGD"
        out.append((m, f"{acc[m].mean:.2f}%", delta, f"Test accuracy, mean of three models "
                    f"(± {acc[m].std})."))
    return out


def step_cost_text() -> str:
    f = paper.STEP_COST_F
    return f"≈ {f['SAM-ON']:g}F vs {f['SAM-all']:g}F"


def step_cost_help() -> str:
    f = paper.STEP_COST_F
    return (f"Forward-pass units: SGD {f['SGD']:g}F, SAM-all {f['SAM-all']:g}F; SAM-ON's ascent "
            f"pass needs only the norm parameters' gradients, about {f['SAM-ON']:g}F in all.")


def sparsity_help() -> str:
    samon = next(c for c in paper.SPARSE_PERTURBATION if c.method == "SAM-ON")
    return (f"gamma and beta of the norm layers: {samon.sparsity:.2%} of the weights are left "
            "alone")


def sharpness_table() -> str:
    """Accuracy and the four sharpness probes per method; the best (lowest sharpness, highest
    accuracy) in bold."""
    acc = paper.TEST_ACCURACY
    best_acc = max(METHODS, key=lambda m: acc[m].mean)
    rows = ["| | " + " | ".join(METHODS) + " |", "|---|" + "---|" * len(METHODS),
            "| Test accuracy (%) | " + " | ".join(
                _stat(acc[m], 2, m == best_acc) for m in METHODS) + " |"]
    for (steps, rho), values in paper.SHARPNESS.items():
        flattest = min(METHODS, key=lambda m: values[m].mean)
        name = f"{steps} step{'s' if steps > 1 else ''}, rho = {rho:g}"
        rows.append(f"| {name} | " + " | ".join(
            f"{'**' if m == flattest else ''}{values[m].mean:.3f}{'**' if m == flattest else ''}"
            f" ± {values[m].std:.3f}" for m in METHODS) + " |")
    return "\n".join(rows)


def sparsity_table() -> str:
    """The sparse-perturbation comparison, one column per (method, sparsity)."""
    cols = paper.SPARSE_PERTURBATION
    best = max(cols, key=lambda c: c.accuracy.mean)
    head = "| | " + " | ".join(c.method for c in cols) + " |"
    sparsity = "| Sparsity | " + " | ".join(f"{c.sparsity:.2%}".replace(".00%", "%")
                                            for c in cols) + " |"
    accuracy = "| Test accuracy (%) | " + " | ".join(
        _stat(c.accuracy, 2, c is best) for c in cols) + " |"
    return "\n".join([head, "|---|" + "---|" * len(cols), sparsity, accuracy])


def vit_sentence() -> str:
    v = paper.VIT_S32_IMAGENET_LION
    return (f"And beyond ResNets: a ViT-S/32 on ImageNet with **Lion** as the base optimizer "
            f"reaches {v['Lion']:.2f}% (Lion), {v['SAM-all']:.2f}% (SAM-all) and "
            f"**{v['SAM-ON']:.2f}%** (SAM-ON).")
