"""The query parameters of a link, checked before any widget sees them.

Every page's URL parameters are declared here (``page_params``): a number with its range, one
choice of a list, several choices, a user name, or an owner key (a secret: checked elsewhere and
never listed). ``check_params`` converts and range-checks each value of a link and returns those
to ignore, each with the reason, so that the page can say which parameters it ignored and why
instead of silently launching the defaults. A value that
Streamlit itself cannot convert (``epochs=`` followed by 400 nines overflows an ``int``) never
reaches the widget. No streamlit here: ``app_pages.link_params`` applies the result.

The parameters of a page whose choices only that page knows (Live's views, Compare's metrics,
filters) are repeated here; ``tests/hostile/test_hostile_pages.py`` checks them against the pages.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from samon_app.forms import FORM_CONFIG_FIELDS, MAX_SEEDS
from samon_app.markup import md_escape
from samon_app.owner import clean_owner
from samon_app.page_paths import COMPARE, HOME, LAUNCH, LIVE
from samon_app.vocabulary import METHODS, RHO_KEYS, SAM_VARIANTS
from samon_core.catalog import MODELS
from samon_core.runs.config import CHOICES, field_info, parse_field_value
from samon_core.runs.fieldspec import name_text, quote, range_text, suggest

# Streamlit's own parameters (embedding); never ours to check.
RESERVED = frozenset({"embed", "embed_options"})
MAX_VALUE_CHARS = 200  # longer values are refused before any parsing
MAX_SHOWN = 10  # ignored parameters listed in the warning; the rest are counted

# What the pages Live and Compare offer: declared here once, read by those pages and by the checks.
LIVE_VIEWS = ("Accuracy & loss", "Sharpness", "γ distribution", "Speed", "Landscape",
              "Robustness")
# Compare's metric -> (its label, the record kind it comes from)
COMPARE_METRICS: dict[str, tuple[str, str]] = {
    "test_acc": ("Test accuracy", "epoch"),
    "train_acc": ("Train accuracy", "epoch"),
    "test_loss": ("Test loss", "epoch"),
    "train_loss": ("Train loss", "epoch"),
    "acc": ("Train accuracy per step", "step"),
    "loss": ("Train loss per step", "step"),
}
# Compare's filter (a runs-table column) -> its label
COMPARE_FILTERS: dict[str, str] = {
    "method_label": "Method",
    "model": "Model",
    "dataset": "Dataset",
    "preset": "Preset",
    "owner": "Owner",
    "state": "Status",
}


@dataclass(frozen=True)
class Param:
    """One URL parameter: ``kind`` is 'int', 'float', 'choice' (one of ``options``), 'choices'
    (any of ``options``, repeatable), 'owner' or 'secret' (never checked here). Numbers are
    checked against ``bounds`` (ge/gt/le/lt); ``optional`` numbers may be empty (= the
    default)."""

    kind: str
    bounds: Mapping[str, float] = field(default_factory=dict)
    options: Collection[str] = ()
    optional: bool = False
    field_name: str | None = None  # the RunConfig field whose parser reads the number
    what: str = "value"  # how a refused choice is described: "no such <what>"


def _number_param(name: str) -> Param:
    """A RunConfig number field as a URL parameter, with the field's own range."""
    info = field_info(name)
    bounds = {k: info[k] for k in ("ge", "gt", "le", "lt") if k in info}
    return Param(info["type"], bounds, optional=info["optional"], field_name=name)


def launch_params(presets: Sequence[str]) -> dict[str, Param]:
    """The Launch page: the preset picker and every field of the form."""
    params: dict[str, Param] = {
        "preset": Param("choice", options=tuple(presets), what="preset"),
        "methods": Param("choices", options=tuple(METHODS), what="method"),
        "variant": Param("choice", options=tuple(SAM_VARIANTS), what="SAM variant"),
        "model": Param("choice", options=tuple(MODELS), what="model"),
        "seeds": Param("int", {"ge": 1, "le": MAX_SEEDS}, field_name="seed"),
    }
    for name in FORM_CONFIG_FIELDS:
        if name in CHOICES:
            params[name] = Param("choice", options=tuple(CHOICES[name]))
        elif name not in params:
            params[name] = _number_param(name)
    rho = _number_param("rho")
    for key in RHO_KEYS.values():
        params[key] = rho
    return params


def live_params(groups: Collection[str]) -> dict[str, Param]:
    return {
        "group": Param("choice", options=groups, what="comparison"),
        "view": Param("choice", options=LIVE_VIEWS, what="view"),
    }


def compare_params(values: Mapping[str, Collection[str]],
                   groups: Collection[str] = ()) -> dict[str, Param]:
    """Compare: the comparison shown, the metric and one filter per column; ``values`` holds
    each filter column's values in the store (a filter for a value no run has shows nothing)."""
    params = {"group": Param("choice", options=groups, what="comparison"),
              "c_metric": Param("choice", options=tuple(COMPARE_METRICS), what="metric")}
    for name in COMPARE_FILTERS:
        params[f"f_{name}"] = Param("choices", options=values.get(name, ()), what="run with")
    return params


# Every page: the user's name and, in a capability link (?owner=NAME&key=KEY), its owner key.
GLOBAL_PARAMS: dict[str, Param] = {"owner": Param("owner"), "key": Param("secret")}
# Parameters whose value is a secret: app_pages/identity.py checks them against the run store,
# and they are never listed among the ignored ones (the warning would show the key).
SECRET_KINDS = frozenset({"secret"})
# Parameters no link shared by the app carries: who the user is (the name and its key).
IDENTITY_PARAMS = frozenset(GLOBAL_PARAMS)
# Words that make a parameter's name look like a secret pasted into a link by mistake (the
# teacher token, a password, 'Key' or 'owner_key' for 'key'): such a parameter is removed
# from the address on every page and listed without its value.
_SECRET_WORDS = ("key", "token", "pass", "secret", "pwd", "auth", "cred")


def looks_secret(name: str) -> bool:
    """Whether ``name`` (not the link's own ``key``) is named like a secret."""
    folded = name.casefold()
    return name != "key" and any(word in folded for word in _SECRET_WORDS)

# Every parameter name some page reads: a name outside it is unknown on every page; one of
# another page is left alone (it may be meant for the page the link leads to next).
ALL_NAMES = frozenset(
    [*GLOBAL_PARAMS, *launch_params(()), *live_params(()), *compare_params({})]
)


def page_params(page: str, options: Callable[[str], Any]) -> dict[str, Param] | None:
    """The parameters of the page named ``page`` (its address, ``page_paths``: Home, Launch,
    Live, Compare), or None for a page without declared parameters (nothing is checked there
    but the owner). ``options(name)`` supplies what only the store knows: 'presets', 'groups',
    'filter_values'."""
    if page == HOME:
        return {}
    if page == LAUNCH:
        return launch_params(options("presets"))
    if page == LIVE:
        return live_params(options("groups"))
    if page == COMPARE:
        return compare_params(options("filter_values"), options("groups"))
    return None


# ---------------------------------------------------------------------------------------------
# checking values
# ---------------------------------------------------------------------------------------------


def _number_problem(spec: Param, text: str) -> str | None:
    """Why ``text`` is no valid value of a number parameter, or None."""
    if not text.strip(" "):
        return None if spec.optional else "it is empty"
    whole = spec.kind == "int"
    try:
        value = parse_field_value(spec.field_name or "seed", text) if spec.field_name else None
    except ValueError:
        value = None
    if value is None or isinstance(value, bool):
        return "it is not a whole number" if whole else "it is not a number"
    if not math.isfinite(value):
        return "it is not a finite number"
    b = spec.bounds
    if (("ge" in b and value < b["ge"]) or ("gt" in b and value <= b["gt"])
            or ("le" in b and value > b["le"]) or ("lt" in b and value >= b["lt"])):
        return f"it must be {'a whole number' if whole else 'a number'} {range_text(b)}"
    return None


def _choice_text(options: Collection[str]) -> str:
    shown = [str(o) for o in list(options)[:8]]
    more = f" and {len(options) - 8} more" if len(options) > 8 else ""
    return ", ".join(shown) + more


def _value_problem(spec: Param, values: Sequence[str]) -> str | None:
    """Why the values of one parameter are refused, or None when they may be used."""
    if any(len(v) > MAX_VALUE_CHARS for v in values):
        longest = max(len(v) for v in values)
        return f"its value is too long ({longest:,} characters)"
    if spec.kind == "choices":
        unknown = [v for v in values if v and v not in spec.options]
        if unknown:
            shown = ", ".join(quote(v, 40) for v in unknown[:3])
            return f"no {spec.what} {shown}" + (f"; choose from {_choice_text(spec.options)}"
                                               if spec.options else "")
        return None
    if len(values) > 1:
        return f"it is given {len(values)} times"
    text = values[0] if values else ""
    if spec.kind == "choice":
        if text in spec.options:
            return None
        if not text:
            return "it is empty"
        hint = f"; choose from {_choice_text(spec.options)}" if spec.options else ""
        return f"no {spec.what} {quote(text, 40)}{hint}"
    if spec.kind == "owner":
        _, error = clean_owner(text)
        return error and "it is not a valid user name (1-40 letters a-z, digits and . _ @ -)"
    return _number_problem(spec, text)


@dataclass
class Ignored:
    """A parameter of the link that is not used, and why."""

    name: str
    value: str  # as received (shown clipped)
    reason: str
    # False for a list whose unknown values alone are left out (Streamlit keeps the others)
    drop: bool = True


def check_params(given: Mapping[str, Sequence[str]],
                 params: Mapping[str, Param] | None) -> list[Ignored]:
    """The parameters of ``given`` (name -> its values, as in the URL) to ignore on a page
    with ``params`` (None: a page without declared parameters; only the global ones are
    checked there). A name no page knows is ignored everywhere but on such pages."""
    out: list[Ignored] = []
    for name, values in given.items():
        values = list(values)
        shown = ", ".join(values) if len(values) > 1 else (values[0] if values else "")
        spec = GLOBAL_PARAMS.get(name) or (params or {}).get(name)
        if name in RESERVED or (spec is not None and spec.kind in SECRET_KINDS):
            continue
        if spec is None and looks_secret(name):  # every page, its value never shown
            out.append(Ignored(name, "", "a secret never belongs in a link: removed (its value "
                               "is not shown)"))
            continue
        if spec is None:
            if params is not None and name not in ALL_NAMES:
                close = suggest([name], sorted([*params, *GLOBAL_PARAMS]))
                out.append(Ignored(name, "", f"this page has no such parameter{close} (its "
                                   "value is not shown)"))
            continue
        problem = _value_problem(spec, values)
        if problem:
            keep = spec.kind == "choices" and "too long" not in problem
            if keep:
                problem += " (the other values are used)"
            out.append(Ignored(name, shown, problem, drop=not keep))
    return out


def warning_text(ignored: Sequence[Ignored]) -> str:
    """The warning that lists the ignored parameters, every user string escaped."""
    lines = ["Some parameters of this link were ignored; the page uses its defaults for them:"]
    for item in ignored[: MAX_SHOWN]:
        value = f" = {md_escape(quote(item.value, 40))}" if item.value else ""
        lines.append(f"- **{md_escape(name_text(item.name))}**{value}: "
                     f"{md_escape(item.reason, 300)}")
    if len(ignored) > MAX_SHOWN:
        lines.append(f"- and {len(ignored) - MAX_SHOWN} more")
    return "\n".join(lines)
