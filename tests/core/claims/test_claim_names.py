"""The claims' sentences name methods and SAM variants as the catalog names them
(``MethodSpec.name`` through ``paper.method_name``, ``methods.variant_name``): renamed in the
catalog, every one of those sentences follows, so none types a name of its own."""

from __future__ import annotations

import json
import subprocess
import sys

from support.paths import REPO as ROOT

from samon_core.catalog.methods import VARIANTS, variant_name
from samon_core.claims import runsets
from samon_core.claims.rules import VARIANT_FIGURE

# Renames the catalog's method families and SAM variants before the claims are loaded, then
# prints the sentences that name them.
_RENAMED = r"""
import dataclasses, json
from samon_core.catalog import methods
for key, new in {"base": "BASE-X", "all": "ALL-X", "norm": "ON-X", "no-norm": "NN-X"}.items():
    methods.BY_KEY[key] = dataclasses.replace(methods.BY_KEY[key], name=new)
for i, v in enumerate(list(methods.VARIANTS)[:4]):
    methods.VARIANTS[v] = methods.VARIANTS[v] and f"V{i}-X"
from samon_core.claims import calibration, data, rules, runsets
claims = {c.id: c for c in data.CLAIMS}
print(json.dumps({
    "no-norm": [claims["no-norm"].statement, claims["no-norm"].paper_text,
                claims["no-norm"].hint, claims["no-norm"].cpu_note.split(". ")[0],
                *(p.paper for p in rules.RULES["no-norm"])],
    "variants": [claims["variants"].statement, claims["variants"].paper_text,
                 *(p.paper for p in rules.RULES["variants"])],
    "spreads": [calibration.SPREADS[s]["sharpness@20"].how for s in ("gpu", "paper")],
    "names": runsets.VARIANT_NAMES,
}))
"""


def _renamed() -> dict:
    out = subprocess.run([sys.executable, "-c", _RENAMED], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def test_a_variants_name_is_the_catalogs():
    assert variant_name(("none", "l2")) == "SAM"
    assert variant_name(("elementwise", "linf")) == VARIANTS[("elementwise", "linf")]
    for tag, v in VARIANT_FIGURE.items():
        assert runsets.VARIANT_NAMES[tag or "sam"] == variant_name(v)


def test_the_claims_sentences_follow_the_catalogs_names():
    texts = _renamed()
    old = ("SGD", "SAM-all", "SAM-ON", "ASAM", "p=inf")
    for text in [*texts["no-norm"], *texts["variants"], *texts["spreads"]]:
        assert not [w for w in old if w in text], text
    no_norm = " ".join(texts["no-norm"])
    assert "plain SAM" in no_norm and "V1-X" in no_norm and "NN-X" in no_norm
    statement, figure = texts["variants"][:2]
    assert "In each of SAM, V1-X, V2-X and V3-X, perturbing" in statement
    assert "V3-X: ALL-X ~" in figure and "; BASE-X ~" in figure
    assert [t.split(",")[0] for t in texts["variants"][2:]] == [
        "figure (SAM", "figure (V1-X", "figure (V2-X", "figure (V3-X"]
    assert all("printed for BASE-X" in t for t in texts["spreads"])
    assert texts["names"]["asam-layerwise"] == "V2-X"
