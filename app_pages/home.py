"""Home: what SAM, SAM-all and SAM-ON are, the update rule, the paper's message and numbers, and
a button into the quick demo. Readable without clicking anything."""

from __future__ import annotations

import streamlit as st

from app_pages import class_ui, launching, paths, workers
from samon_app import laptop
from samon_app.estimates import estimate_text
from samon_app.forms import QUICK_DEMO
from samon_app.paper_tables import (
    STEP_COST_METRIC,
    accuracy_metrics,
    perturbed_text,
    rho_ratio_text,
    sharpness_table,
    sparsity_help,
    sparsity_note,
    sparsity_sentence,
    sparsity_table,
    step_cost_help,
    step_cost_text,
    table_settings_note,
    vit_sentence,
)
from samon_app.vocabulary import SYNTHETIC_NOTE
from samon_core.claims import CLAIMS
from samon_core.runs.presets import get_preset


def quick_demo_ui(key: str) -> bool:
    """The quick-demo button; True when clicked. Disabled, with the reason as its help, when
    this session can launch nothing (``launching.launch_block``)."""
    who = launching.launch_block()
    return st.button(
        "Run the quick demo: SGD vs SAM-all vs SAM-ON",
        key=key,
        type="primary",
        icon=":material/play_arrow:",
        help=who or get_preset(QUICK_DEMO).description,
        disabled=who is not None,
    )


def hero_ui() -> bool:
    st.title("SAM-ON Lab")
    st.markdown(
        "#### Sharpness-aware minimization needs only the normalization layers: watch it happen."
    )
    st.markdown(
        "This lab trains small networks side by side with plain SGD, with **SAM** on all "
        "parameters (*SAM-all*) and with SAM on the normalization layers only (**SAM-ON**), and "
        "shows accuracy, sharpness and the norm layers' parameters as they change. It follows "
        "Mueller, Vlaar, Rolnick & Hein, *Normalization Layers Are All That Sharpness-Aware "
        "Minimization Needs* (NeurIPS 2023)."
    )
    left, right = st.columns([1, 1], vertical_alignment="center")
    with left:
        clicked = quick_demo_ui("demo_top")
    with right:
        st.page_link(paths.LAUNCH_PAGE, label="Or set up your own comparison",
                     icon=":material/tune:")
    st.caption(
        "The quick demo trains a tiny ResNet three times on a small **synthetic** image set "
        "(generated, not CIFAR) on the CPU. The three runs train side by side (in lockstep); "
        "the Live page opens and shows the curves as they come in. "
        + robustness_text(get_preset(QUICK_DEMO).configs.values())
        + estimate_text(workers.preset_estimate(get_preset(QUICK_DEMO).configs))
    )
    return clicked


def robustness_text(configs) -> str:
    """What the quick demo measures after training, from its configs ('' unless every run
    measures robustness on as many images)."""
    configs = list(configs)
    images = {c.robustness_images for c in configs}
    if not configs or any(c.robustness == "off" for c in configs) or len(images) != 1:
        return ""
    return (f"After the last epoch each run is attacked (PGD) and its test images corrupted "
            f"({images.pop():,} images), so its verdict card can lead with robustness. ")


def laptop_ui() -> None:
    """What a laptop shows: the lab's measured cpu-size verdicts, comparison by comparison
    (``samon_app.laptop``), the claims left open and those not measured, and how it was
    measured."""
    found = laptop.lead()
    with st.container(border=True, key="home_laptop"):
        st.subheader(laptop.TITLE, anchor=False)
        if found.problem:
            st.caption(f"The lab's laptop measurements could not be read ({found.problem}); "
                       "Live and the Claims page judge your own runs.")
            return
        st.markdown("The lab ran the claims' smallest size on a laptop CPU. What it settled:")
        st.markdown("\n".join(f"- {f.text}" for f in found.findings))
        rest = []
        if found.open_claims:
            rest.append(f"Open at this size (no comparison settled): "
                        f"{', '.join(found.open_claims)}.")
        if found.unmeasured:
            rest.append(f"Not measured on a CPU yet: {', '.join(found.unmeasured)}.")
        if rest:
            st.markdown(" ".join(rest))
        st.caption(f"{found.basis} Your own runs may differ: Live and the Claims page judge "
                   "them by the same rule.")
        st.page_link(paths.CLAIMS_PAGE, icon=":material/fact_check:",
                     label="Claims: check each claim with your own runs")


def message_ui() -> None:
    st.info(
        "**The paper's central message:** applying sharpness-aware minimization *only to the "
        "normalization layers* of a network typically enhances its performance.",
        icon=":material/campaign:",
    )
    st.markdown("##### Key numbers from the paper (WRN-28-10 on CIFAR-100, 3 seeds)")
    cols = st.columns(5)
    for col, (label, value, delta, help_text) in zip(cols, accuracy_metrics(), strict=False):
        col.metric(label, value, delta, help=help_text)
    cols[3].metric("Perturbed by SAM-ON", perturbed_text(), help=sparsity_help())
    cols[4].metric(STEP_COST_METRIC, step_cost_text(), help=step_cost_help())
    st.caption(table_settings_note())


def sam_ui() -> None:
    st.header("Sharpness-aware minimization (SAM)", divider="gray")
    st.markdown(
        "SAM looks for weights whose whole *neighbourhood* has a low loss (a flat minimum), "
        "not just a low loss at one point. It minimizes the worst loss within a ball of "
        "radius $\\rho$ around the weights $w$:"
    )
    st.latex(r"\min_{w}\; \max_{\|\epsilon\|_p \le \rho}\; \mathcal{L}(w + \epsilon)")
    st.markdown(
        "In practice the inner maximization takes **one ascent step**. Each training step "
        "therefore needs two forward-backward passes: one at $w$ to find the perturbation, one "
        "at the perturbed point $w + \\epsilon$ whose gradient updates the weights:"
    )
    st.latex(
        r"\epsilon = \rho\,\frac{\nabla_w \mathcal{L}(w)}{\|\nabla_w \mathcal{L}(w)\|_2},"
        r"\qquad w \leftarrow w - \eta\, \nabla_w \mathcal{L}(w + \epsilon)"
    )
    st.markdown(
        "The adaptive variant **ASAM** scales the ball by a diagonal operator $T_w$ (for example "
        "$T_w = |w| + \\eta$ elementwise), so that rescaling the parameters does not change the "
        "perturbation:"
    )
    st.latex(
        r"\epsilon = \rho\,\frac{T_w^2\, \nabla \mathcal{L}(w)}{\|T_w\, \nabla \mathcal{L}(w)\|_2}"
        r"\;\; (p = 2), \qquad \epsilon = \rho\, T_w\, \mathrm{sign}(\nabla \mathcal{L}(w))"
        r"\;\; (p = \infty)"
    )


def samon_ui() -> None:
    st.header("SAM-ON: perturb only the normalization layers", divider="gray")
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.markdown(
            "Normalization layers (BatchNorm in ResNets, LayerNorm in Vision Transformers) "
            "normalize their input with a mean $\\mu$ and a variance $\\sigma^2$, then scale and "
            "shift it with two learned vectors, $\\gamma$ and $\\beta$:"
        )
        st.latex(r"\mathrm{Norm}(x) = \gamma \cdot \frac{x - \mu}{\sigma} + \beta")
        st.markdown(
            "**SAM-ON** (*SAM on the normalization layers*) computes the same ascent step but "
            f"perturbs **only** $\\gamma$ and $\\beta$ ({perturbed_text()} of all parameters in "
            "the paper's WRN-28-10). With "
            "$g = \\nabla_w \\mathcal{L}(w)$ and $N$ the set of norm parameters:"
        )
        st.latex(
            r"\epsilon_i = \begin{cases} \rho\, g_i \,/\, \|g_N\|_2 & i \in N "
            r"\text{ (a } \gamma \text{ or } \beta\text{)} \\ 0 & \text{otherwise} \end{cases}"
        )
        st.latex(r"w \leftarrow w - \eta\, \nabla_w \mathcal{L}(w + \epsilon)")
        st.markdown(
            "The update still uses the gradient of **all** parameters at the perturbed point; "
            "only *where* SAM looks for the worst case changes. **SAM-all** is ordinary SAM "
            "(every parameter perturbed). Two controls test whether it is the norm layers or "
            "just sparsity: **no-norm** perturbs everything *except* $\\gamma, \\beta$, and "
            "**random mask** perturbs a random set of parameters as small as SAM-ON's."
        )
    with right:
        st.markdown("**What the paper finds**")
        st.markdown(
            "- SAM-ON **matches or beats SAM-all** for ResNets with BatchNorm and ViTs with "
            "LayerNorm, across SAM variants (SAM, ASAM, p = ∞).\n"
            f"- SAM-ON wants a **larger rho**: {rho_ratio_text()}.\n"
            "- SAM-ON models end up **sharper, yet generalize better**: low sharpness is not "
            "what makes SAM-ON work.\n"
            "- SAM-ON **shifts the distribution of gamma towards larger values**.\n"
            "- Leaving the norm layers out (**no-norm**) can harm training; a **random mask** of "
            "the same sparsity does not help (80.97%).\n"
            "- SAM-ON is **cheaper**: its ascent pass needs only the norm parameters' "
            "gradients."
        )


def tables_ui() -> None:
    st.header("Sharper, yet better", divider="gray")
    left, right = st.columns(2, gap="large")
    with left:
        st.markdown(
            "Logit-normalized adaptive $\\ell_\\infty$ $m$-sharpness (the loss increase under the "
            "worst small perturbation, relative to each weight's size), three WRN-28 models per "
            "method on CIFAR-100 (from the paper's poster; lower = flatter):"
        )
        st.markdown(sharpness_table())
        st.caption(
            "SAM-ON is the *sharpest* of the three and still the most accurate: flatness alone "
            "does not explain SAM's success."
        )
    with right:
        st.markdown(
            "Other sparse perturbations, same WRN-28-10 on CIFAR-100 (sparsity = share of "
            f"parameters *not* perturbed). {sparsity_sentence()}"
        )
        st.markdown(sparsity_table())
        st.caption(sparsity_note())
        st.markdown(vit_sentence())


def lab_ui() -> bool:
    st.header("Using the lab", divider="gray")
    st.markdown(
        "1. **Launch** a comparison: a preset (the quick CPU demo, or the paper's setup on a "
        "GPU) or your own choice of methods, model, data, rho and seeds. Runs wait in a queue "
        "and are trained by worker processes, never by the web page.\n"
        "2. **Live** shows the runs of a comparison while they train: accuracy and loss, "
        "sharpness, the distribution of gamma per method, and the speed of each method.\n"
        "3. **Compare** puts any finished runs side by side, averages seeds into mean ± std "
        "bands, builds a results table in the paper's format and exports everything as CSV or "
        "JSON.\n"
        f"4. **Claims** checks {len(CLAIMS)} of the paper's claims one by one against runs you "
        "launch from "
        "each claim's card, with a verdict from your own numbers and what would settle it.\n"
        "5. **Playground** shows GD, SAM, ASAM and SAM-ON on 2D loss surfaces: no training, "
        "every slider answers at once."
    )
    st.warning(SYNTHETIC_NOTE + " A few CPU minutes are too little for the paper's accuracy "
               "gaps (those need CIFAR-100, a WRN-28-10 and 200 epochs on a GPU): under every "
               "chart, Live says what *your* runs show, and the Claims page gives a verdict per "
               "claim, with what would settle it.", icon=":material/science:")
    return quick_demo_ui("demo_bottom")


clicked = hero_ui()
class_ui.add_seed_ui("home")
laptop_ui()
message_ui()
sam_ui()
samon_ui()
tables_ui()
clicked = lab_ui() or clicked
if clicked:
    launching.launch_group(get_preset(QUICK_DEMO).configs, preset=QUICK_DEMO, seeds=1)
