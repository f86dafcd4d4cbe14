"""The Landscape view of the Live page and the sentence that reads the user's slices."""

from __future__ import annotations

import pytest
from support.apptest import app, page, texts
from support.configs import tiny_config
from support.fakes import fake_run
from support.records import record

from samon_app.landscape import Slice, flatness_sentence, images_sentence, n_test_images, slices
from samon_app.reader import RunData, RunInfo
from samon_core.records import LandscapeRecord


def _slice(label, rise, centre=1.0):
    return Slice("r-" + label, label, "#000000", (-1.0, 0.0, 1.0),
                 (centre + rise, centre, centre + rise))


def test_the_sentence_names_the_flattest_and_the_sharpest_of_the_users_runs():
    text = flatness_sentence([_slice("SGD", 0.9), _slice("SAM-ON", 0.2)], "random")
    assert "SAM-ON's minimum is the flattest" in text and "SGD's the sharpest" in text
    # the other way round when the runs say so: the text follows the runs, not the paper
    text = flatness_sentence([_slice("SGD", 0.1), _slice("SAM-ON", 0.8)], "random")
    assert "SGD's minimum is the flattest" in text


def test_the_sentence_says_when_the_slices_do_not_separate_the_runs():
    assert "about as flat" in flatness_sentence([_slice("a", 0.50), _slice("b", 0.52)], "random")
    assert "Only one run" in flatness_sentence([_slice("a", 0.5)], "gradient")
    assert "No slices yet" in flatness_sentence([], "random")


def _add_slices(store, rid, rise):
    with store.metrics_writer(rid) as w:
        for direction in ("random", "gradient"):
            for split in ("train", "test"):
                w.write(record(LandscapeRecord, epoch=2, step=24, time=3.0,
                               direction=direction, split=split, offsets=[-1.0, 0.0, 1.0],
                               losses=[2.0 + rise, 2.0, 2.0 + rise], n=64, seed=0))


def test_live_landscape_view_draws_each_runs_slice_in_its_colour(runs):
    cfg = tiny_config()
    sgd = fake_run(runs, cfg.replace(method="base"), group="gl")
    on = fake_run(runs, cfg, group="gl")
    _add_slices(runs, sgd, 0.8)
    _add_slices(runs, on, 0.3)
    at = page(app(group="gl"), "app_pages/live.py")
    at.segmented_control(key="view").set_value("Landscape").run()
    assert not at.exception
    charts = [c for c in at.get("plotly_chart") if "live_landscape" in (c.proto.id or "")]
    assert charts, "no landscape chart"
    import json

    spec = json.loads(charts[0].proto.spec)
    colors = {t["name"]: t["line"]["color"] for t in spec["data"]}
    assert len(colors) == 2 and len(set(colors.values())) == 2
    assert "minimum is the flattest" in texts(at)


def test_compare_shows_the_slices_and_says_how_to_get_missing_ones(runs):
    cfg = tiny_config()
    with_slices = fake_run(runs, cfg, group="gc")
    without = fake_run(runs, cfg.replace(method="base"), group="gc")
    _add_slices(runs, with_slices, 0.3)
    at = page(app(group="gc"), "app_pages/compare.py")
    assert not at.exception
    body = texts(at)
    assert "Only one run has a slice" in body
    assert f"python -m samon_core landscape {without}" in body
    assert "Your runs:" in body  # the accuracy verdict under the curves


def test_compare_draws_a_2d_slice_when_a_run_has_one(runs):
    rid = fake_run(runs, tiny_config(), group="gp")
    with runs.metrics_writer(rid) as w:
        w.write({"kind": "landscape2d", "epoch": 2, "step": 24, "time": 3.0, "split": "test",
                 "offsets": [-1.0, 0.0, 1.0], "losses": [[3, 2, 3], [2, 1, 2], [3, 2, 3]],
                 "n": 64, "seeds": [0, 1]})
    at = page(app(group="gp"), "app_pages/compare.py")
    assert not at.exception
    assert any("compare_plane" in (c.proto.id or "") for c in at.get("plotly_chart"))


# --- the centre of a slice and the images it uses -------------------------------------------------


def _even_slice(label, losses):
    offsets = tuple(-1.0 + 2.0 * i / 9 for i in range(10))  # 10 points: none at 0
    return Slice("r-" + label, label, "#000000", offsets, tuple(losses))


def test_the_centre_of_an_even_slice_is_the_point_nearest_zero_and_the_sentence_says_where():
    """10 points over [-1, 1] have no point at 0: the old 'middle index' took +0.111; the centre
    is the point nearest 0 (-0.111 and +0.111 tie: the first), and the sentence names it."""
    losses = [3.0, 2.6, 2.2, 1.8, 1.0, 1.4, 1.9, 2.3, 2.7, 3.2]
    s = _even_slice("SAM-ON", losses)
    assert s.centre == 4 and s.centre_offset == pytest.approx(-1 / 9)
    assert s.rise == pytest.approx((3.0 + 3.2) / 2 - 1.0)
    text = flatness_sentence([s], "random")
    assert "no point at offset 0" in text and "-0.111" in text and f"{s.rise:.3f}" in text
    odd = _slice("SGD", 0.5)  # 3 points: the centre is offset 0, nothing to say
    assert odd.centre_offset == 0.0 and "no point at offset 0" not in flatness_sentence(
        [odd, _slice("SAM-ON", 0.1)], "random")


def test_the_sentence_says_how_many_images_a_slice_uses():
    part = Slice("a", "SGD", "#000", (-1.0, 0.0, 1.0), (2.0, 1.0, 2.0), 1024, "test", 10_000)
    whole = Slice("b", "SAM-ON", "#000", (-1.0, 0.0, 1.0), (2.0, 1.0, 2.5), 1000, "test", 1000)
    assert images_sentence([part]) == (
        "Each slice is measured on the first 1,024 of 10,000 test images: on part of the test "
        "set, the loss at offset 0 differs from the run's recorded test loss (all its test "
        "images).")
    assert images_sentence([whole]) == "Each slice is measured on all 1,000 test images."
    both = flatness_sentence([part, whole], "random")
    assert both.endswith(images_sentence([part, whole]))
    assert "all 1,000 test images or the first 1,024 of 10,000" in both
    train = Slice("c", "SGD", "#000", (-1.0, 0.0, 1.0), (2.0, 1.0, 2.0), 256, "train")
    assert "probe's 256 training images" in images_sentence([train])
    assert images_sentence([_slice("SGD", 0.3)]) == ""  # a record without n: nothing claimed


def test_slices_read_the_images_from_the_record_and_the_test_set_from_the_config():
    cfg = {"dataset": "cifar100", "test_subset": 0}
    assert n_test_images(cfg) == 10_000
    assert n_test_images({**cfg, "test_subset": 2000}) == 2000
    assert n_test_images({"dataset": "nope"}) is None
    info = RunInfo("r1", "SGD", "SGD", "base", "#000", "finished", cfg)
    rec = {"kind": "landscape", "epoch": 1, "step": 1, "time": 1.0, "direction": "random",
           "split": "test", "offsets": [-1.0, 0.0, 1.0], "losses": [2.0, 1.0, 2.0], "n": 1024}
    data = {"r1": RunData("r1", 1, [rec, {**rec, "split": "train", "n": True}], [], [])}
    (s,) = slices([info], data, "random", "test")
    assert (s.n, s.split, s.of) == (1024, "test", 10_000)
    (t,) = slices([info], data, "random", "train")
    assert (t.n, t.of) == (None, None)  # a bool is no count
