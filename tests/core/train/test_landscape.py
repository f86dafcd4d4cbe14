"""samon_core.train.landscape: filter-normalised directions and loss slices."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from samon_core.train.landscape import (
    filter_normalize,
    gradient_direction,
    loss_slice,
    offsets,
    random_direction,
)


def _model(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    net.train()
    net(torch.randn(16, 3, 8, 8))  # BatchNorm running statistics that are not the defaults
    return net.eval()


def _data(n=32):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 5, (n,), generator=g)


def test_filter_normalisation_gives_each_filter_the_weights_filter_norm():
    model = _model()
    params = [p.detach() for p in model.parameters()]
    d = random_direction(model, seed=3)
    for di, w in zip(d, params, strict=True):
        if w.dim() > 1:
            assert torch.allclose(di.flatten(1).norm(dim=1), w.flatten(1).norm(dim=1), rtol=1e-5)
        else:
            assert torch.allclose(di.norm(), w.norm(), rtol=1e-5)
    # per filter, not per tensor: a filter of tiny weights gets a tiny direction
    w = torch.tensor([[1.0, 0.0], [0.0, 1e-3]])
    (out,) = filter_normalize([torch.ones(2, 2)], [w])
    assert torch.allclose(out.norm(dim=1), torch.tensor([1.0, 1e-3]))


def test_same_seed_same_draw_for_every_run_of_a_comparison():
    a, b = _model(0), _model(1)
    da, db = random_direction(a, 7), random_direction(b, 7)
    # the same Gaussian draw, normalised to different weights: equal up to the per-filter scale
    for x, y in zip(da, db, strict=True):
        if x.norm() == 0 or y.norm() == 0:  # e.g. beta at its initial 0: no scale to follow
            continue
        cos = F.cosine_similarity(x.flatten(1) if x.dim() > 1 else x[None],
                                  y.flatten(1) if y.dim() > 1 else y[None])
        assert torch.allclose(cos, torch.ones_like(cos), atol=1e-5)
    assert not torch.equal(da[0], random_direction(a, 8)[0])


def test_slice_at_offset_zero_is_the_models_eval_loss_and_weights_are_restored():
    model, (x, y) = _model(), _data()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()  # the slice evaluates in eval mode and gives the mode back
    d = random_direction(model, 0)
    grid = [(a,) for a in offsets(5, 1.0)]
    losses = loss_slice(model, x, y, [d], grid)
    assert model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # bitwise, running stats too
    model.eval()
    with torch.no_grad():
        plain = F.cross_entropy(model(x), y).item()
    assert losses[2] == pytest.approx(plain, rel=1e-6)
    assert losses[0] != losses[2]


def test_two_dimensional_slice_and_the_gradient_direction_goes_uphill():
    model, (x, y) = _model(), _data()
    g = gradient_direction(model, x, y)
    small = 1e-3
    down, mid, up = loss_slice(model, x, y, [g], [(-small,), (0.0,), (small,)])
    assert down < mid < up  # a first-order step along the gradient raises the loss
    d = random_direction(model, 1)
    grid = [(a, b) for a in (-0.5, 0.0, 0.5) for b in (-0.5, 0.0, 0.5)]
    two = loss_slice(model, x, y, [d, g], grid)
    assert len(two) == 9 and two[4] == pytest.approx(mid, rel=1e-6)


def test_offsets_are_symmetric_and_refuse_one_point():
    assert offsets(5, 2.0) == [-2.0, -1.0, 0.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="at least 2"):
        offsets(1, 1.0)


@pytest.mark.slow
def test_trainer_records_landscape_slices_after_the_last_epoch(tmp_path):
    """landscape_points > 0: four 1D slices (random and gradient direction, train and test)
    whose offset-0 losses agree with each other per split (the same weights, the same images)."""
    import json

    from support.configs import tiny_config

    from samon_core.train.trainer import train

    cfg = tiny_config(epochs=1, sharpness_samples=64, sharpness_m=32, landscape_points=5,
                      landscape_radius=0.5)
    train(cfg, tmp_path / "r")
    lines = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    recs = [json.loads(line) for line in lines]
    slices = [r for r in recs if r["kind"] == "landscape"]
    assert {(r["direction"], r["split"]) for r in slices} == {
        ("random", "train"), ("gradient", "train"), ("random", "test"), ("gradient", "test")}
    for r in slices:
        assert r["offsets"] == [-0.5, -0.25, 0.0, 0.25, 0.5] and len(r["losses"]) == 5
    for split in ("train", "test"):
        centre = {r["losses"][2] for r in slices if r["split"] == split}
        assert len(centre) == 1
    assert not any(r["kind"] == "landscape" for r in recs[:-4])  # only after the last epoch


@pytest.mark.slow
def test_cli_landscape_slices_a_finished_run_later(tmp_path, capsys, clean_env):
    """A run trained without slices gets them from its checkpoint; bad input is one line. The
    run has no meta.json (no requester), so only the teacher may add them."""
    import json

    from support.configs import tiny_config
    from support.teacher import TEACHER_TOKEN

    from samon_core.cli import main
    from samon_core.train.trainer import train

    clean_env.setenv("SAMON_TEACHER_TOKEN", TEACHER_TOKEN)
    runs = tmp_path / "runs"
    train(tiny_config(epochs=1, sharpness_samples=64, sharpness_m=32), runs / "r1")
    assert main(["landscape", "r1", "--points", "3", "--runs-dir", str(runs)]) == 2  # no key
    assert main(["landscape", "r1", "--points", "3", "--plane", "--owner", "teacher",
                 "--runs-dir", str(runs)]) == 0
    lines = (runs / "r1" / "metrics.jsonl").read_text().splitlines()
    slices = [json.loads(s) for s in lines if '"landscape"' in s]
    assert len(slices) == 4 and all(len(s["losses"]) == 3 for s in slices)
    (plane,) = [json.loads(s) for s in lines if '"landscape2d"' in s]
    assert len(plane["losses"]) == 3 and all(len(row) == 3 for row in plane["losses"])
    test_random = next(s for s in slices if s["split"] == "test" and s["direction"] == "random")
    # the centre of the plane is the trained weights: the same loss as the 1D slice's centre
    assert plane["losses"][1][1] == pytest.approx(test_random["losses"][1], rel=1e-6)
    teacher = ["--owner", "teacher", "--runs-dir", str(runs)]
    assert main(["landscape", "r1", "--points", "1", *teacher]) == 2
    assert main(["landscape", "nope", *teacher]) == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.slow
def test_a_worker_computes_the_slices_a_user_asked_for(tmp_path, monkeypatch):
    """Compare's button: request_slices flags a finished run and queues it; a worker that gets
    the message computes the slices from the checkpoint and clears the request. Only the run's
    requester may ask."""
    import json

    from support.configs import tiny_config

    from samon_core import service
    from samon_core.runs.owners import NotAllowed
    from samon_core.runs.store import RunStore
    from samon_core.service.settings import load_settings
    from samon_core.service.worker import Worker

    monkeypatch.delenv("SAMON_TRAINER", raising=False)
    store = RunStore(tmp_path / "runs")
    s = load_settings(environ={})
    key = {name: service.register_owner(name, store=store) for name in ("ann", "mallory")}
    rid = service.submit(tiny_config(epochs=1, sharpness_samples=64, sharpness_m=32),
                         owner="ann", store=store, settings=s, owner_key=key["ann"])
    Worker(store, s, exit_when_idle=True).run()
    assert store.read_status(rid)["state"] == "finished"
    with pytest.raises(NotAllowed):
        service.request_slices(rid, owner_key=key["mallory"], store=store, settings=s)
    assert service.request_slices(rid, owner_key=key["ann"], points=3, store=store,
                                  settings=s) == "queued"
    assert service.request_slices(rid, owner_key=key["ann"], points=3, store=store,
                                  settings=s) == "pending"
    Worker(store, s, exit_when_idle=True).run()
    lines = (store.run_dir(rid) / "metrics.jsonl").read_text().splitlines()
    slices = [json.loads(x) for x in lines if '"landscape"' in x]
    assert len(slices) == 4 and all(len(x["losses"]) == 3 for x in slices)
    assert service.pending_slices(store, rid) is None
    assert store.read_status(rid)["state"] == "finished"
