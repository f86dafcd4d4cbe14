"""Launch: presets first, then a form for one comparison group (several methods launched
together, optionally with several seeds). Every form field is bound to the URL, so a link
reproduces the configuration (seed included). The estimated time and the queue position show
before launching; bad input is explained under its field.

The teacher's room locks bind students here as on the server (only presets, the most epochs,
the models offered), and a launch whose CIFAR files the workers cannot get is stopped before the
button with one warning (app_pages/checks.py); the server checks both again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from app_pages import checks, identity, launching, paths, reads, workers
from samon_app.estimates import (
    device_kind,
    estimate_group,
    estimate_note,
    estimate_text,
    runs_overview,
)
from samon_app.formatting import format_duration
from samon_app.forms import (
    MAX_SEEDS,
    QUICK_DEMO,
    form_configs,
    form_defaults,
    preset_form_values,
    rho_hint,
)
from samon_app.paper_tables import rho_ratio_text
from samon_app.room_view import (
    FormLocks,
    binding_room,
    form_locks,
    launch_problems,
    lock_lines,
)
from samon_app.vocabulary import (
    DEVICE_LABELS,
    METHOD_HELP,
    METHODS,
    RHO_KEYS,
    SAM_VARIANTS,
    SYNTHETIC_NOTE,
)
from samon_core.catalog import DATASETS, MODELS, is_synthetic
from samon_core.catalog.methods import OPTIMIZER_LABELS
from samon_core.runs.config import CHOICES, field_help
from samon_core.runs.presets import get_preset, list_presets
from samon_core.runs.states import ACTIVE_STATES
from samon_core.service import Room

DEFAULTS = form_defaults()


# ---------------------------------------------------------------------------------------------
# widgets with URL binding; each returns a plain value
# ---------------------------------------------------------------------------------------------


def _initial(key: str) -> dict[str, Any]:
    """``value=`` only when Session State does not hold the key yet (else Streamlit warns)."""
    return {} if key in st.session_state else {"value": DEFAULTS[key]}


def _number(label: str, key: str, *, step: float | int | None = None, fmt: str | None = None,
            help: str | None = None, max_value: int | None = None) -> Any:
    """A number field bound to the URL; ``max_value`` (a room lock) lowers a value above it
    first, since Streamlit would reset such a value to the field's minimum."""
    kw = _initial(key)
    if max_value is not None:
        kw["max_value"] = max_value
        if "value" in kw:
            kw["value"] = min(kw["value"], max_value)
        elif isinstance(st.session_state[key], (int, float)):
            st.session_state[key] = min(st.session_state[key], max_value)
    if key not in st.session_state and kw["value"] is not None and isinstance(kw["value"], float):
        kw["value"] = float(kw["value"])
    return st.number_input(label, key=key, step=step, format=fmt, bind="query-params",
                           help=help or field_help(key), **kw)


def _select(label: str, key: str, options: list[str], labels: dict[str, str] | None = None,
            help: str | None = None) -> str:
    """A select box showing (and putting into the URL) the option names themselves, so that
    links stay short and stable; ``labels`` describes the chosen option underneath."""
    kw = {} if key in st.session_state else {
        "index": options.index(DEFAULTS[key]) if DEFAULTS[key] in options else 0
    }
    value = st.selectbox(label, options, key=key, bind="query-params",
                         help=help or field_help(key), **kw)
    if labels and value in labels:
        st.caption(labels[value])
    return value


# ---------------------------------------------------------------------------------------------
# presets
# ---------------------------------------------------------------------------------------------


def _load_preset(name: str) -> None:
    """Callback: copy a preset into the form's widgets (and so into the URL)."""
    values = preset_form_values(get_preset(name).configs)
    for key, value in values.items():
        st.session_state[key] = value


def preset_ui(kind: str, n_workers: int, room: Room) -> tuple[str, bool]:
    """The preset picker. Returns (preset name, whether 'Launch this preset' was clicked). The
    button is disabled for a preset that ``room``'s locks forbid or whose data the workers
    cannot get, with the reason above it."""
    names = list_presets()
    default = names.index(QUICK_DEMO) if QUICK_DEMO in names else 0
    kw = {} if "preset" in st.session_state else {"index": default}
    name = st.selectbox("Preset", names, key="preset", bind="query-params", **kw)
    preset = get_preset(name)
    st.markdown(f"**{preset.title}**  \n{preset.description}")
    factors = reads.estimate_factors()
    est = workers.preset_estimate(preset.configs)
    st.dataframe(runs_overview(preset.configs, 1, kind, factors.get(kind, (1.0, 0))[0]),
                 hide_index=True, width="stretch")
    st.markdown(estimate_text(est))
    if preset.gpu and kind == "cpu":
        st.warning("This preset is meant for a GPU, and no worker here has one: on the CPU it "
                   "would take very long.", icon=":material/warning:")
    if any(is_synthetic(cfg.dataset) for cfg in preset.configs.values()):
        st.caption(SYNTHETIC_NOTE)
    locked = launch_problems(room, preset.configs.values(), name)
    for line in locked:
        st.caption(f":material/lock: {line[:1].upper()}{line[1:]}: ask the teacher.")
    blocked = checks.data_warning_ui(cfg.dataset for cfg in preset.configs.values())
    who = launching.launch_block()  # a taken name without its key: said before the click
    left, right = st.columns(2)
    with left:
        launch = st.button(f"Launch this preset ({len(preset.configs)} runs)", type="primary",
                           icon=":material/rocket_launch:", key="launch_preset",
                           disabled=bool(locked) or blocked or who is not None, help=who)
    with right:
        st.button("Copy it into the form below to change it", key="edit_preset",
                  icon=":material/edit:", on_click=_load_preset, args=(name,),
                  disabled=room.presets_only)
    return name, launch


# ---------------------------------------------------------------------------------------------
# the form
# ---------------------------------------------------------------------------------------------


def _methods_ui(slot: Callable[[str], None]) -> dict[str, Any]:
    """Section 1: the methods, the SAM variant and one rho per chosen SAM method."""
    values: dict[str, Any] = {}
    kw = {} if "methods" in st.session_state else {"default": DEFAULTS["methods"]}
    values["methods"] = st.multiselect(
        "Methods (launched together as one comparison group)",
        list(METHODS),
        key="methods",
        bind="query-params",
        help="; ".join(f"**{m}**: {h}" for m, h in METHOD_HELP.items()),
        **kw,
    )
    slot("methods")
    values["variant"] = _select(
        "SAM variant", "variant", list(SAM_VARIANTS),
        help="How the ascent step is computed: plain SAM, adaptive ASAM (elementwise or "
        "layerwise T_w), or the p = infinity (sign) version. The paper's four variants come "
        "first.",
    )
    slot("variant")
    sam_methods = [m for m in values["methods"] if m in RHO_KEYS]
    for m in RHO_KEYS:
        values[RHO_KEYS[m]] = st.session_state.get(RHO_KEYS[m])
    if sam_methods:
        cols = st.columns(len(sam_methods))
        for col, m in zip(cols, sam_methods, strict=True):
            key = RHO_KEYS[m]
            best, where = rho_hint(m, values["variant"])
            with col:
                values[key] = st.number_input(
                    f"rho for {m}",
                    key=key,
                    bind="query-params",
                    placeholder=f"{best:g} (paper)",
                    step=0.05,
                    format="%g",
                    help="Radius of the perturbation. Empty = the paper's best value for this "
                    f"variant. {rho_ratio_text()}.",
                    **({} if key in st.session_state else {"value": None}),
                )
                st.caption(f"paper's best: **{best:g}** ({where})")
                slot(key)
    return values


def _model_data_ui(slot: Callable[[str], None], locks: FormLocks) -> dict[str, Any]:
    """Section 2: model (those the room allows), normalization layer, dataset and subset
    sizes."""
    values: dict[str, Any] = {}
    c1, c2, c3 = st.columns(3)
    with c1:
        models = locks.model_options(list(MODELS))
        if st.session_state.get("model") not in (None, *models):
            st.session_state["model"] = models[0]
        values["model"] = _select("Model", "model", models,
                                  {name: spec.label for name, spec in MODELS.items()})
        if locks.models is not None:
            st.caption(":material/lock: The teacher allows only these models in this room.")
        slot("model")
        spec = MODELS.get(values["model"])
        norms = list(spec.norms if spec is not None else CHOICES["norm_layer"])
        if st.session_state.get("norm_layer") not in (None, *norms):
            st.session_state["norm_layer"] = norms[0]
        values["norm_layer"] = _select("Normalization layer", "norm_layer",
                                       list(CHOICES["norm_layer"]))
        slot("norm_layer")
    with c2:
        values["dataset"] = _select(
            "Dataset", "dataset", list(CHOICES["dataset"]),
            {name: (":material/science: " if spec.synthetic else "") + spec.label
             for name, spec in DATASETS.items()},
        )
        if is_synthetic(values["dataset"]):
            st.caption(SYNTHETIC_NOTE)  # labelled as such wherever it shows
        slot("dataset")
    with c3:
        values["train_subset"] = _number("Training images (0 = all)", "train_subset", step=500)
        slot("train_subset")
        values["test_subset"] = _number("Test images (0 = all)", "test_subset", step=500)
        slot("test_subset")
    return values


def _training_ui(slot: Callable[[str], None], locks: FormLocks) -> dict[str, Any]:
    """Section 3: epochs (at most the room's), batch size, optimizer, learning rate, seeds and
    device."""
    values: dict[str, Any] = {}
    c1, c2, c3, c4 = st.columns(4)
    with c1:
        values["epochs"] = _number("Epochs", "epochs", step=1, max_value=locks.max_epochs)
        if locks.max_epochs is not None:
            st.caption(f":material/lock: The teacher allows at most {locks.max_epochs} epochs "
                       "per run in this room.")
        slot("epochs")
        values["batch_size"] = _number("Batch size", "batch_size", step=32)
        slot("batch_size")
    with c2:
        values["optimizer"] = _select(
            "Base optimizer", "optimizer", list(CHOICES["optimizer"]),
            help=field_help("optimizer") + " " + "; ".join(
                f"{k} = {v}" for k, v in OPTIMIZER_LABELS.items()) + ".")
        slot("optimizer")
        values["lr"] = _number("Learning rate", "lr", step=0.01, fmt="%g")
        slot("lr")
    with c3:
        values["seeds"] = _number(
            "Seeds per method", "seeds", step=1,
            help=f"Train each method with this many seeds (1-{MAX_SEEDS}): seed, seed+1, ... "
            "Compare then shows mean ± std.",
        )
        slot("seeds")
        values["seed"] = _number("First seed", "seed", step=1)
        slot("seed")
    with c4:
        values["device"] = _select(
            "Device", "device", list(CHOICES["device"]),
            help=field_help("device") + " The queue's workers decide where runs train: "
            + "; ".join(f"{k} = {v}" for k, v in DEVICE_LABELS.items()) + ".")
        slot("device")
    return values


def _advanced_ui(slot: Callable[[str], None]) -> dict[str, Any]:
    """'More settings': schedule, augmentation, sharpness probes and logging."""
    values: dict[str, Any] = {}
    c1, c2, c3 = st.columns(3)
    with c1:
        values["momentum"] = _number("Momentum (beta1)", "momentum", step=0.05, fmt="%g")
        slot("momentum")
        values["weight_decay"] = _number("Weight decay", "weight_decay", step=1e-4, fmt="%g")
        slot("weight_decay")
        values["label_smoothing"] = _number("Label smoothing", "label_smoothing", step=0.05,
                                            fmt="%g")
        slot("label_smoothing")
    with c2:
        values["lr_schedule"] = _select("Learning-rate schedule", "lr_schedule",
                                        list(CHOICES["lr_schedule"]))
        slot("lr_schedule")
        values["warmup_epochs"] = _number("Warm-up epochs", "warmup_epochs", step=1)
        slot("warmup_epochs")
        values["augment"] = _select("Augmentation", "augment", list(CHOICES["augment"]))
        slot("augment")
    with c3:
        values["sharpness_every"] = _number("Sharpness probe every N epochs (0 = at the end)",
                                            "sharpness_every", step=1)
        slot("sharpness_every")
        values["sharpness_samples"] = _number("Images for the sharpness probes (0 = off)",
                                              "sharpness_samples", step=128)
        slot("sharpness_samples")
        values["sharpness_multi_steps"] = _number("Steps of the multi-step probe (0 = off)",
                                                  "sharpness_multi_steps", step=1)
        slot("sharpness_multi_steps")
        values["log_every_s"] = _number("Seconds between step records", "log_every_s",
                                        step=0.5, fmt="%g")
        slot("log_every_s")
    return values


def launch_form_ui(slots: dict[str, Any], locks: FormLocks) -> dict[str, Any]:
    """The form for one comparison group, within the room's ``locks``. Returns its plain values
    (the keys of ``forms.form_defaults()``). ``slots`` receives one placeholder per field, under
    the field, where an error about that field is shown."""

    def slot(key: str) -> None:
        slots[key] = st.empty()

    st.subheader("1 · What to compare", anchor=False)
    values = _methods_ui(slot)
    st.subheader("2 · Model and data", anchor=False)
    values.update(_model_data_ui(slot, locks))
    st.subheader("3 · Training", anchor=False)
    values.update(_training_ui(slot, locks))
    with st.expander("More settings: schedule, augmentation, sharpness probes, logging",
                     expanded=bool(st.session_state.get("launch_advanced_errors"))):
        values.update(_advanced_ui(slot))
    return values


ADVANCED = ("momentum", "weight_decay", "label_smoothing", "lr_schedule", "warmup_epochs",
            "augment", "sharpness_every", "sharpness_samples", "sharpness_multi_steps",
            "log_every_s")


def show_errors(slots: dict[str, Any], errors: dict[str, str]) -> None:
    """Each error under its field (fields without a slot: at the top of the summary). The
    'More settings' section opens by itself when one of its fields is wrong."""
    advanced = any(k in ADVANCED for k in errors)
    if advanced != bool(st.session_state.get("launch_advanced_errors")):
        st.session_state["launch_advanced_errors"] = advanced
        if advanced:
            st.rerun()
    for key, message in errors.items():
        if key in slots:
            slots[key].error(message, icon=":material/error:")
        else:
            st.error(f"{key}: {message}", icon=":material/error:")


def summary_ui(result, est: dict[str, Any], ahead: int, n_workers: int, room: Room) -> bool:
    """What is about to be launched, its estimated time and queue position, and the launch
    button (disabled, with the reason, when ``room``'s locks forbid the runs or the workers
    cannot get their data). Returns True when the button was clicked."""
    st.subheader("4 · Launch", anchor=False)
    if not result.ok:
        show = ", ".join(k.replace("_", " ") for k in result.errors)
        where = " (some are under *More settings*)" if any(k in ADVANCED for k in
                                                          result.errors) else ""
        st.error(f"Fix the fields marked in red first{where}: {show}.", icon=":material/error:")
        st.button("Launch", type="primary", disabled=True, key="launch_form_disabled")
        return False
    factor = reads.estimate_factors().get(est["kind"], (1.0, 0))[0]
    st.dataframe(runs_overview(result.configs, result.seeds, est["kind"], factor),
                 hide_index=True, width="stretch")
    c1, c2, c3 = st.columns(3)
    c1.metric("Runs", f"{result.n_runs}",
              help=f"{len(result.configs)} method(s) × {result.seeds} seed(s)")
    c2.metric(f"Estimated time ({est['kind'].upper()})", format_duration(est["wall_s"]),
              help=f"From model size, images and epochs ({estimate_note(est)}); "
              f"{format_duration(est['total_s'])} of training in all, shared by {n_workers} "
              "worker(s).")
    c3.metric("Queue", "empty" if ahead == 0 else f"{ahead} ahead",
              help="Runs queued or training before yours. Yours start when a worker is free.")
    identity.share_ui("This link holds this configuration (seed included), without your name "
                      "or key: copy it to share the comparison or to launch it again later.")
    locked = launch_problems(room, result.configs.values(), None)
    if locked:
        st.error(f"Not allowed in this room: {'; '.join(locked)}.", icon=":material/lock:")
    blocked = checks.data_warning_ui(cfg.dataset for cfg in result.configs.values())
    who = launching.launch_block()
    return st.button(f"Launch {result.n_runs} run{'s' if result.n_runs != 1 else ''}",
                     type="primary", icon=":material/rocket_launch:", key="launch_form",
                     disabled=bool(locked) or blocked or who is not None, help=who)


# ---------------------------------------------------------------------------------------------
# page
# ---------------------------------------------------------------------------------------------

st.title("Launch a comparison")
st.markdown(
    "Pick a preset, or describe your own comparison below. All methods of a comparison train "
    "with the same model, data, schedule and seed, so they differ only in what SAM perturbs. "
    "Runs wait in a queue and train in worker processes; the **Live** page follows them."
)
room_now = checks.room()
teacher = checks.is_teacher()
binding = binding_room(room_now, is_teacher=teacher)
if teacher and lock_lines(room_now):  # the teacher sees what binds the others
    st.caption(f":material/lock_open: Students in this room may launch "
               f"{'; '.join(lock_lines(room_now))}. You are the teacher: these locks do not "
               "bind you.")
workers_list = workers.workers_status()
n_workers = max(1, len([w for w in workers_list if w.get("alive", True)]))
runs_df = reads.list_runs()
ahead = int(runs_df["state"].isin(ACTIVE_STATES).sum()) if len(runs_df) else 0

with st.container(border=True):
    st.subheader("Presets", anchor=False)
    preset_kind = device_kind("auto", workers.worker_devices(workers_list))
    preset_name, launch_preset = preset_ui(preset_kind, n_workers, binding)
if launch_preset:
    launching.launch_group(get_preset(preset_name).configs, preset=preset_name, seeds=1)

st.header("Your own comparison", divider="gray")
locks = form_locks(binding)
if locks.presets_only:
    st.caption(":material/lock: The teacher allows only presets and claims in this room.")
    st.page_link(paths.CLAIMS_PAGE, label="The paper's claims", icon=":material/fact_check:")
    st.stop()
field_slots: dict[str, Any] = {}
form_values = launch_form_ui(field_slots, locks)
form = form_configs(form_values)
show_errors(field_slots, form.errors)
kind = device_kind(str(form_values.get("device") or "auto"),
                   workers.worker_devices(workers_list))
estimate = estimate_group(form.configs, form.seeds, kind, n_workers, reads.estimate_factors())
if summary_ui(form, estimate, ahead, n_workers, binding):
    launching.launch_group(form.configs, preset=None, seeds=form.seeds)
