"""samon_core.claims: the verdict of each claim on constructed records (consistent, not
consistent, inconclusive, partial), the statistics rule, the run sets of every size, label noise,
and the ``claim`` commands of the CLI on a fake store."""

from __future__ import annotations

import json

import pytest

from samon_core import claims, paper
from samon_core.claims import stats
from samon_core.claims.collect import collect
from samon_core.claims.commands import plan_seed
from samon_core.claims.results import RunResult
from samon_core.claims.runsets import CPU_LABEL_NOISE, SIZES, run_set
from samon_core.cli import main
from samon_core.runs.config import RunConfig
from samon_core.runs.presets import preset_configs
from samon_core.runs.store import RunStore

# ---------------------------------------------------------------------------------------------
# records like the trainer's (samon_core/records.py)
# ---------------------------------------------------------------------------------------------


def epoch_record(epoch: int, test_acc_pct: float) -> dict:
    return {"kind": "epoch", "epoch": epoch, "step": 10 * epoch, "time": float(epoch),
            "train_loss": 2.0, "train_ce": 2.0, "train_acc": 0.5, "test_loss": 2.1,
            "test_ce": 2.1, "test_acc": test_acc_pct / 100, "epoch_time": 1.0, "eta_s": 0.0,
            "sam": True}


def gamma_record(epoch: int, mean: float) -> dict:
    return {"kind": "norm_stats", "epoch": epoch, "step": 10 * epoch, "time": float(epoch),
            "param": "gamma", "bin_edges": [0.0, 1.0, 2.0], "counts": [3, 3], "below": 0,
            "above": 0, "mean": mean, "std": 0.1, "layers": []}


def records(acc: float, *, epochs: int = 3, sharp: float | None = 0.2, gamma_end: float = 1.0,
            step_time: float = 0.05) -> list[dict]:
    """A run's records: gammas at init, step / epoch / gamma records per epoch (the final test
    accuracy ``acc`` in %, earlier epochs lower), the sharpness probe at the end."""
    out = [gamma_record(0, 1.0)]
    for e in range(1, epochs + 1):
        out.append({"kind": "step", "epoch": e, "step": 10 * e, "time": float(e), "loss": 2.0,
                    "acc": 0.5, "lr": 0.1, "step_time": step_time, "images_per_s": 100.0,
                    "load": 1.0})
        out.append(gamma_record(e, 1.0 + (gamma_end - 1.0) * e / epochs))
        out.append(epoch_record(e, acc - 2.0 * (epochs - e)))
    if sharp is not None:
        out.append({"kind": "sharpness", "epoch": epochs, "step": 10 * epochs, "time": 9.0,
                    "steps": 1, "rho": 0.01, "value": sharp, "m": 128, "n": 256})
    return out


def results(values: dict[str, list[float]], *, state: str = "finished", **per_method) -> list:
    """RunResults: method key -> final accuracy per seed; ``per_method[key]`` adds record
    options (dicts of ``records`` keywords, one per seed or one for all)."""
    out = []
    for method, accs in values.items():
        opts = per_method.get(method, {})
        for seed, acc in enumerate(accs):
            o = opts[seed] if isinstance(opts, list) else opts
            out.append(RunResult(f"{method}-{seed}", method, seed, state,
                                 tuple(records(acc, **o))))
    return out


# ---------------------------------------------------------------------------------------------
# the rule
# ---------------------------------------------------------------------------------------------


def test_t_critical_and_compare_rule():
    assert stats.t_critical(4) == 2.78 and stats.t_critical(2) == 4.30
    assert stats.t_critical(11) == 2.23 and stats.t_critical(100) == 1.96
    m = stats.Metric("acc", "points", floor=0.1, huge=5.0)
    a, b = stats.summarize("a", [54.0, 54.4, 53.6]), stats.summarize("b", [53.0, 53.4, 52.6])
    c = stats.compare(a, b, m)
    assert c.effect == pytest.approx(1.0) and c.spread == pytest.approx(0.4)
    assert c.noise == pytest.approx(0.4 * (2 / 3) ** 0.5)
    assert c.threshold == pytest.approx(2.78 * c.noise) and c.outcome == stats.BETTER  # 1 > 0.91
    near = stats.compare(a, stats.summarize("b", [53.3, 53.7, 52.9]), m)
    assert near.effect == pytest.approx(0.7) and near.outcome == stats.TIE
    # identical seeds: the floor keeps a tiny gap from counting as real
    same = stats.compare(stats.summarize("a", [50.05] * 3), stats.summarize("b", [50.0] * 3), m)
    assert same.noise == 0.1 and same.outcome == stats.TIE
    one = stats.compare(stats.summarize("a", [54.0]), stats.summarize("b", [50.0]), m)
    assert one.outcome == stats.UNKNOWN and one.one_seed
    assert stats.compare(stats.summarize("a", [56.0]), stats.summarize("b", [50.0]),
                         m).outcome == stats.BETTER


# ---------------------------------------------------------------------------------------------
# accuracy
# ---------------------------------------------------------------------------------------------


def test_accuracy_consistent_with_numbers_in_the_sentence():
    v = claims.get_claim("accuracy").verdict(results({
        "base": [50.0, 50.5, 49.5], "all": [53.0, 53.5, 52.5], "norm": [54.0, 54.4, 53.6]}))
    assert v.verdict == claims.CONSISTENT and not v.provisional and v.settle == ""
    assert v.evidence["methods"]["SAM-ON"]["mean"] == pytest.approx(54.0)
    assert v.evidence["methods"]["SGD"]["n"] == 3
    assert "In your 3 seeds" in v.sentence and "SAM-ON beat SGD by 4.0 points" in v.sentence
    assert [c["status"] for c in v.evidence["comparisons"]] == ["holds", "holds", "holds"]


def test_accuracy_not_consistent_when_sgd_really_wins():
    v = claims.get_claim("accuracy").verdict(results({
        "base": [55.0, 55.3, 54.7], "all": [50.0, 50.4, 49.6], "norm": [50.2, 50.6, 49.8]}))
    assert v.verdict == claims.NOT_CONSISTENT
    assert "SGD beat SAM-all by 5.0 points" in v.sentence and "is real" in v.sentence


def test_accuracy_inconclusive_when_noise_exceeds_the_effect():
    v = claims.get_claim("accuracy").verdict(results({
        "base": [50.0, 53.0, 47.0], "all": [51.0, 48.0, 54.0], "norm": [52.0, 49.0, 55.0]}))
    assert v.verdict == claims.INCONCLUSIVE
    comp = v.evidence["comparisons"][1]
    assert abs(comp["effect"]) < comp["threshold"] and comp["outcome"] == "tie"
    assert "within the noise" in v.sentence and "more seeds" in v.settle


def test_accuracy_one_seed_needs_a_huge_gap():
    small = claims.get_claim("accuracy").verdict(
        results({"base": [50.0], "all": [52.0], "norm": [53.0]}))
    assert small.verdict == claims.INCONCLUSIVE and small.provisional
    assert "single seed" in small.sentence and "3 or more seeds" in small.settle
    huge = claims.get_claim("accuracy").verdict(
        results({"base": [40.0], "all": [50.0], "norm": [51.0]}))
    assert huge.verdict == claims.INCONCLUSIVE  # SAM-ON vs SAM-all: 1 point, unknown
    win = claims.get_claim("accuracy").verdict(
        results({"base": [40.0], "all": [50.0], "norm": [56.0]}))
    assert win.verdict == claims.CONSISTENT and win.provisional
    assert win.sentence.startswith("Provisional:")


def test_partial_runs_give_a_provisional_verdict_from_their_latest_epoch():
    rs = results({"base": [50.0, 50.5, 49.5], "all": [53.0, 53.5, 52.5],
                  "norm": [54.0, 54.4, 53.6]}, state="running")
    v = claims.get_claim("accuracy").verdict(rs)
    assert v.provisional and v.sentence.startswith("Provisional (runs still training;")
    assert v.evidence["methods"]["SAM-ON"]["partial_seeds"] == [0, 1, 2]
    # a run one epoch in is compared with the others at epoch 1, not at their last epoch
    behind = [RunResult("slow", "norm", 3, "running", tuple(records(54.0, epochs=1)))]
    done = results({"base": [50.0, 50.5, 49.5], "all": [53.0, 53.5, 52.5],
                    "norm": [54.0, 54.4, 53.6]})
    v = claims.get_claim("accuracy").verdict(done + behind)
    assert v.evidence["epoch"] == 1 and "compared at epoch 1" in v.sentence
    assert v.evidence["methods"]["SGD"]["mean"] == pytest.approx(50.0 - 4.0)  # epoch 1 of 3
    queued = [RunResult("q", "norm", 0, "queued")] + [r for r in rs if r.method != "norm"]
    v = claims.get_claim("accuracy").verdict(queued)
    assert v.verdict == claims.INCONCLUSIVE and "no test accuracy yet for SAM-ON" in v.sentence


# ---------------------------------------------------------------------------------------------
# the other claims
# ---------------------------------------------------------------------------------------------


def test_no_norm_verdicts():
    claim = claims.get_claim("no-norm")
    harm = claim.verdict(results({"all": [53.0, 53.2, 52.8], "norm": [54.0, 54.2, 53.8],
                                  "no-norm": [50.0, 50.2, 49.8]}))
    assert harm.verdict == claims.CONSISTENT
    helps = claim.verdict(results({"all": [53.0, 53.2, 52.8], "norm": [54.0, 54.2, 53.8],
                                   "no-norm": [57.0, 57.2, 56.8]}))
    assert helps.verdict == claims.NOT_CONSISTENT
    tie = claim.verdict(results({"all": [53.0, 55.0, 51.0], "norm": [54.0, 52.0, 56.0],
                                 "no-norm": [53.5, 51.5, 55.5]}))
    assert tie.verdict == claims.INCONCLUSIVE


def test_sharper_verdicts():
    claim = claims.get_claim("sharper")
    sharp_on = [{"sharp": 0.30}, {"sharp": 0.31}, {"sharp": 0.29}]
    sharp_all = [{"sharp": 0.18}, {"sharp": 0.19}, {"sharp": 0.17}]
    ok = claim.verdict(results({"all": [53.0, 53.2, 52.8], "norm": [55.0, 55.2, 54.8]},
                               norm=sharp_on, all=sharp_all))
    assert ok.verdict == claims.CONSISTENT and "ended sharper than" in ok.sentence
    assert ok.evidence["methods"]["SAM-ON"]["mean"] == pytest.approx(0.30)
    flatter = claim.verdict(results({"all": [53.0, 53.2, 52.8], "norm": [55.0, 55.2, 54.8]},
                                    norm=sharp_all, all=sharp_on))
    assert flatter.verdict == claims.NOT_CONSISTENT
    no_probe = claim.verdict(results({"all": [53.0], "norm": [55.0]}, norm={"sharp": None},
                                     all={"sharp": None}))
    assert no_probe.verdict == claims.INCONCLUSIVE and "sharpness" in no_probe.sentence


def test_sparsity_verdicts():
    claim = claims.get_claim("sparsity")
    assert claim.verdict(results({"norm": [54.0, 54.2, 53.8], "random": [50.0, 50.3, 49.7],
                                  "all": [53.0, 53.0, 53.0]})).verdict == claims.CONSISTENT
    assert claim.verdict(results({"norm": [50.0, 50.2, 49.8], "random": [54.0, 54.3, 53.7],
                                  "all": [53.0, 53.0, 53.0]})).verdict == claims.NOT_CONSISTENT


def test_gamma_shift_verdicts():
    claim = claims.get_claim("gamma-shift")
    acc = {"base": [50.0] * 3, "all": [53.0] * 3, "norm": [54.0] * 3}
    up = claim.verdict(results(acc, norm=[{"gamma_end": g} for g in (1.20, 1.22, 1.18)],
                               all=[{"gamma_end": g} for g in (1.02, 1.03, 1.01)],
                               base=[{"gamma_end": g} for g in (0.95, 0.96, 0.94)]))
    assert up.verdict == claims.CONSISTENT
    assert up.evidence["methods"]["SAM-ON"]["mean"] == pytest.approx(0.20)
    down = claim.verdict(results(acc, norm=[{"gamma_end": g} for g in (0.90, 0.91, 0.89)],
                                 all=[{"gamma_end": g} for g in (1.02, 1.03, 1.01)],
                                 base=[{"gamma_end": g} for g in (0.95, 0.96, 0.94)]))
    assert down.verdict == claims.NOT_CONSISTENT


def _cost_results(times: dict[str, list[float]], lockstep: bool) -> list[RunResult]:
    out = []
    for seed in range(len(times["norm"])):
        ids = [f"{m}-{seed}" for m in times]
        for m in times:
            out.append(RunResult(f"{m}-{seed}", m, seed, "finished",
                                 tuple(records(50.0, step_time=times[m][seed])),
                                 tuple(ids) if lockstep else (), group=f"g{seed}"))
    return out


def test_cost_needs_lockstep_and_reads_step_times():
    times = {"base": [0.05, 0.05, 0.05], "all": [0.10, 0.11, 0.10], "norm": [0.08, 0.09, 0.08]}
    v = claims.get_claim("cost").verdict(_cost_results(times, lockstep=True))
    assert v.verdict == claims.CONSISTENT
    assert v.evidence["flop_ratio"] == pytest.approx(5 / 6)
    assert "0.81x" in v.sentence and "FLOP estimate is 0.83x" in v.sentence
    unfair = claims.get_claim("cost").verdict(_cost_results(times, lockstep=False))
    assert unfair.verdict == claims.INCONCLUSIVE and "lockstep" in unfair.sentence
    assert "together" in unfair.settle
    dearer = {"base": [0.05] * 3, "all": [0.10, 0.10, 0.10], "norm": [0.12, 0.125, 0.115]}
    assert claims.get_claim("cost").verdict(
        _cost_results(dearer, lockstep=True)).verdict == claims.NOT_CONSISTENT


# ---------------------------------------------------------------------------------------------
# run sets and label noise
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_every_claim_builds_valid_configs_at_every_size(size):
    for claim in claims.CLAIMS:
        configs = claim.runs(size)
        assert len(configs) == len(claim.methods)
        for label, cfg in configs.items():
            assert isinstance(cfg, RunConfig) and cfg.method_label() == label
            assert RunConfig.from_json(cfg.to_json()) == cfg
        assert claim.statement.endswith(".") and claim.paper_text


def test_run_sets_are_shared_and_the_paper_size_is_the_paper_preset():
    acc, sharp = claims.get_claim("accuracy").runs("cpu"), claims.get_claim("sharper").runs("cpu")
    assert {c.config_hash() for c in sharp.values()} <= {c.config_hash() for c in acc.values()}
    assert all(c.label_noise == CPU_LABEL_NOISE for c in acc.values())
    paper_runs = run_set(("base", "all", "norm"), "paper")
    preset = preset_configs("cifar100-wrn-paper")
    assert [c.config_hash() for c in paper_runs.values()] == \
        [c.config_hash() for c in preset.values()]
    assert claims.get_claim("accuracy").paper_numbers["SAM-ON"] == \
        paper.TEST_ACCURACY["SAM-ON"].mean


def test_label_noise_field_hash_and_label():
    c = RunConfig()
    assert c.label_noise == 0.0 and "label_noise" not in c.canonical_dict()
    noisy = c.replace(label_noise=0.2)
    assert noisy.config_hash() != c.config_hash() and noisy.canonical_dict()["label_noise"] == 0.2
    assert noisy.method_label() == "SAM-ON (20% noisy labels)"
    assert noisy.replace(method="base").method_label() == "SGD (20% noisy labels)"
    with pytest.raises(ValueError, match="label_noise"):
        RunConfig(label_noise=0.95)


def test_label_noise_rate_is_exact_and_the_test_set_untouched():
    import torch

    from samon_core.train.data.datasets import load_dataset, noisy_labels

    y = torch.arange(1000) % 10
    noisy = noisy_labels(y, 0.2, 10, seed=3)
    assert int((noisy != y).sum()) == 200  # exactly 20%, never the same class
    assert torch.equal(noisy, noisy_labels(y, 0.2, 10, seed=3))
    assert not torch.equal(noisy, noisy_labels(y, 0.2, 10, seed=4))
    clean = load_dataset("synthetic", train_subset=500, test_subset=200, seed=1)
    dirty = load_dataset("synthetic", train_subset=500, test_subset=200, seed=1, label_noise=0.3)
    assert int((dirty.train_y != clean.train_y).sum()) == 150
    assert torch.equal(dirty.test_y, clean.test_y) and torch.equal(dirty.test_x, clean.test_x)
    assert torch.equal(dirty.train_x, clean.train_x) and "label_noise: 30%" in dirty.source


# ---------------------------------------------------------------------------------------------
# the store and the CLI
# ---------------------------------------------------------------------------------------------


def write_fake_run(store: RunStore, config: RunConfig, acc: float, *, state: str = "finished",
                   group: str = "g", lockstep: list[str] | None = None, epochs_done=None,
                   **opts) -> str:
    """A run folder with records like the trainer's (``records``) and, when finished, a
    summary (with ``lockstep`` when given)."""
    rid = store.create_run(config, {"owner": "alice", "group": group})
    done = config.epochs if epochs_done is None else epochs_done
    recs = records(acc, epochs=done, **opts)
    with store.metrics_writer(rid) as w:
        for rec in recs:
            w.write(rec)
    store.write_status(rid, state, epoch=done)
    if state == "finished":
        summary = {"state": "finished", "final_test_acc": acc / 100, "epochs_done": done}
        if lockstep is not None:
            summary["lockstep"] = lockstep
        store.write_summary(rid, summary)
    return rid


def fake_claim_runs(store: RunStore, claim_id: str, accs: dict[str, list[float]],
                    size: str = "cpu", **kw) -> list[str]:
    """Fake runs of a claim's configs: method key -> final accuracy per seed."""
    claim = claims.get_claim(claim_id)
    ids = []
    for key, cfg in zip(claim.methods, claim.runs(size).values(), strict=True):
        for seed, acc in enumerate(accs[key]):
            ids.append(write_fake_run(store, cfg.replace(seed=seed), acc, **kw))
    return ids


def test_collect_matches_configs_up_to_the_seed(tmp_path):
    store = RunStore(tmp_path / "runs")
    fake_claim_runs(store, "accuracy", {"base": [50.0, 50.5], "all": [51.0, 51.5],
                                        "norm": [52.0, 52.5]})
    write_fake_run(store, claims.get_claim("accuracy").runs("cpu")["SGD (40% noisy labels)"]
                   .replace(lr=0.05), 90.0)  # another config: not the claim's
    got = collect(store, "accuracy", "cpu")
    assert got.missing == () and len(got.runs) == 6
    assert got.verdict.evidence["methods"]["SGD"]["mean"] == pytest.approx(50.25)
    assert len(collect(store, "accuracy", "cpu", seeds=1).runs) == 3
    assert collect(store, "sparsity", "cpu").missing == ("random mask",)


def test_cli_claim_list(capsys):
    assert main(["claim", "list"]) == 0
    out = capsys.readouterr().out
    for cid in claims.CLAIM_IDS:
        assert f"{cid}: " in out


def test_cli_claim_verdict_json_inconclusive_exits_0(tmp_path, capsys):
    store = RunStore(tmp_path / "runs")
    fake_claim_runs(store, "accuracy", {"base": [50.0, 53.0, 47.0], "all": [51.0, 48.0, 54.0],
                                        "norm": [52.0, 49.0, 55.0]})
    assert main(["claim", "verdict", "accuracy", "--runs-dir", str(store.root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["claim"] == "accuracy" and out["verdict"] == "inconclusive"
    assert set(out) >= {"claim", "verdict", "evidence", "sentence"}
    assert out["evidence"]["methods"]["SAM-ON"]["values"] == pytest.approx([52.0, 49.0, 55.0])


def test_cli_claim_verdict_missing_runs_exits_2_with_one_line(tmp_path, capsys):
    assert main(["claim", "verdict", "cost", "--runs-dir", str(tmp_path / "r"), "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("samon: error:") and "\n" not in err and "claim run cost" in err
    assert main(["claim", "verdict", "nope"]) == 2
    assert "unknown claim" in capsys.readouterr().err


def test_claim_run_reuses_finished_runs_and_retrains_cost_out_of_lockstep(tmp_path):
    store = RunStore(tmp_path / "runs")
    claim = claims.get_claim("accuracy")
    configs = [(label, cfg) for label, cfg in claim.runs("cpu").items()]
    fake_claim_runs(store, "accuracy", {"base": [50.0], "all": [51.0], "norm": [52.0]})
    todo, reused = plan_seed(claim, configs, store)
    assert todo == [] and len(reused) == 3
    todo, reused = plan_seed(claims.get_claim("cost"), configs, store)  # not in lockstep
    assert len(todo) == 3 and reused == []
    todo, _ = plan_seed(claim, [(label, c.replace(seed=1)) for label, c in configs], store)
    assert len(todo) == 3


@pytest.mark.slow
def test_cli_claim_run_trains_one_lockstep_group_then_reuses_it(tmp_path, monkeypatch, capsys):
    """A real ``claim run`` on the tiny config (a few seconds): three runs in one lockstep
    group, a verdict printed; a second call trains nothing."""
    from support.configs import tiny_config

    from samon_core.claims import runsets

    monkeypatch.setitem(runsets.BASES, "cpu", tiny_config(sharpness_samples=64,
                                                          sharpness_m=32,
                                                          sharpness_multi_steps=0))
    runs = str(tmp_path / "runs")
    args = ["claim", "run", "cost", "--seeds", "1", "--runs-dir", runs, "--progress", "none"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "0 finished run(s) reused, 3 to train together" in err
    assert out.startswith("cost: ") and "lockstep seed" in out
    store = RunStore(runs)
    ids = store.run_ids()
    assert len(ids) == 3 and all(set(store.read_summary(r)["lockstep"]) == set(ids) for r in ids)
    assert main(args) == 0
    assert "3 finished run(s) reused, 0 to train" in capsys.readouterr().err
    assert len(store.run_ids()) == 3
