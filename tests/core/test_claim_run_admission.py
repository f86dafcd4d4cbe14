"""``claim run`` admits its runs as every other launch does (issue 25): through
``admission.admit`` (the owner's proof and the room's locks re-checked in the transaction that
inserts them, the owner ``cli`` by default, the claim's shared group), trained by the command
line's one "train now" path (``submit.train_now``), reusing the finished runs a second claim
run shares. The trainer is a fake that writes what the real one records (``records.py``
shapes): no real training here.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from support.configs import tiny_config
from support.teacher import TEACHER_TOKEN, teacher_settings

from samon_core import claims, service
from samon_core.claim_cli import claim_group
from samon_core.claims import runsets
from samon_core.cli import main
from samon_core.records import EpochRecord
from samon_core.runs import database as db
from samon_core.runs.states import RunState
from samon_core.runs.store import RunStore
from samon_core.service import admission
from samon_core.service.admission import NewRun, QueueLimits
from samon_core.train import lockstep

submit_module = importlib.import_module("samon_core.service.submit")  # not the function


def _epoch(epoch: int, acc: float) -> EpochRecord:
    return {"kind": "epoch", "epoch": epoch, "step": 4 * epoch, "time": float(epoch),
            "train_loss": 2.0, "train_ce": 2.0, "train_acc": 0.5, "test_loss": 2.1,
            "test_ce": 2.1, "test_acc": acc, "epoch_time": 1.0, "eta_s": 0.0, "sam": True}


class FakeTrainer:
    """``lockstep.train_group`` as far as a verdict reads it: each job's epoch records, its
    status and summary (finished, trained in lockstep with its group), written to its store;
    remembers which configs it was asked to train."""

    def __init__(self) -> None:
        self.trained: list[list[str]] = []  # the config hashes of each call

    def __call__(self, jobs, **_kw) -> list[dict]:
        self.trained.append([job.config.config_hash() for job in jobs])
        ids = [Path(job.run_dir).name for job in jobs]
        out = []
        for i, job in enumerate(jobs):
            store, rid = RunStore(Path(job.run_dir).parent), Path(job.run_dir).name
            acc = 0.40 + 0.01 * i + 0.001 * job.config.seed
            with store.metrics_writer(rid) as w:
                for e in range(1, job.config.epochs + 1):
                    w.write(_epoch(e, acc))
                    if job.callback is not None:
                        job.callback(_epoch(e, acc))
            summary = {"state": RunState.FINISHED.value, "final_test_acc": acc,
                       "best_test_acc": acc, "epochs_done": job.config.epochs,
                       "total_time_s": 1.0, "lockstep": ids}
            store.write_status(rid, RunState.FINISHED, epoch=job.config.epochs)
            store.write_summary(rid, summary)
            out.append(summary)
        return out


@pytest.fixture
def fake_trainer(clean_env) -> FakeTrainer:
    """The claims' cpu runs on the tiny synthetic config, trained by ``FakeTrainer``."""
    clean_env.setitem(runsets.BASES, "cpu", tiny_config())
    trainer = FakeTrainer()
    clean_env.setattr(lockstep, "train_group", trainer)
    return trainer


def _requesters(store: RunStore) -> dict[str, set[tuple[str, str]]]:
    """run id -> its (owner, group) requester rows."""
    out: dict[str, set[tuple[str, str]]] = {}
    with db.reading(store.engine) as conn:
        for row in conn.execute(db.requesters.select()):
            out.setdefault(row.run_id, set()).add((row.owner, row.run_group))
    return out


def _claim_run(claim_id: str, runs: str, *extra: str) -> int:
    return main(["claim", "run", claim_id, "--seeds", "2", "--runs-dir", runs,
                 "--progress", "none", *extra])


def test_claim_runs_are_admitted_under_cli_in_the_claims_group(tmp_path, fake_trainer, capsys):
    runs = str(tmp_path / "runs")
    claim = claims.get_claim("accuracy")
    assert _claim_run("accuracy", runs) == 0
    assert capsys.readouterr().out.startswith("accuracy: ")
    store = RunStore(runs)
    rows = {r["run_id"]: r for r in db.run_rows(store.engine)}
    n = len(claim.runs("cpu"))
    assert len(rows) == 2 * n and fake_trainer.trained and len(fake_trainer.trained) == 2
    asked = _requesters(store)
    for rid, row in rows.items():
        seed = store.read_config(rid).seed
        group = claim_group(claim, "cpu", seed)
        assert (row["owner"], row["run_group"], row["state"]) == ("cli", group, RunState.FINISHED)
        assert asked[rid] == {("cli", group)}
        assert store.read_meta(rid)["preset"] == "claim:accuracy"
    # one lockstep group per seed
    assert sorted(len(call) for call in fake_trainer.trained) == [n, n]


def test_a_second_claim_run_reuses_the_runs_it_shares(tmp_path, fake_trainer, capsys):
    runs = str(tmp_path / "runs")
    first, second = claims.get_claim("accuracy"), claims.get_claim("robustness")
    shared = ({c.config_hash() for c in first.runs("cpu").values()}
              & {c.config_hash() for c in second.runs("cpu").values()})
    assert shared  # the two claims share runs (the run sets say so)
    assert _claim_run("accuracy", runs) == 0
    store = RunStore(runs)
    before = set(store.run_ids())
    capsys.readouterr()
    _claim_run("robustness", runs)  # its verdict may need more records than the fake writes
    new = set(store.run_ids()) - before
    trained = [h for call in fake_trainer.trained[2:] for h in call]
    assert not shared & set(trained)  # the shared configs were reused, not trained again
    assert len(new) == len(trained) == 2 * (len(second.runs("cpu")) - len(shared))
    assert f"{len(shared)} finished run(s) reused" in capsys.readouterr().err
    # a claim run on the same dir once more trains nothing new
    calls = len(fake_trainer.trained)
    assert _claim_run("accuracy", runs) == 0
    assert len(fake_trainer.trained) == calls and set(store.run_ids()) == before | new
    assert capsys.readouterr().err.count(f"{len(first.runs('cpu'))} finished run(s) reused, "
                                         "0 to train") == 2


def test_the_admission_rechecks_the_room_and_the_name_of_a_claim_run(tmp_path, fake_trainer,
                                                                       capsys):
    """The room locked, or the name registered from a browser, between the command's checks and
    its runs: the admission's transaction refuses them; nothing is created or trained."""
    runs = str(tmp_path / "runs")
    store = RunStore(runs)
    real = submit_module.check_runnable

    def lock_the_room() -> None:
        service.set_room(service.Room(max_epochs=1), teacher_token=TEACHER_TOKEN, store=store,
                         settings=teacher_settings())

    def register_dora() -> None:
        if not store.is_registered("dora"):
            store.register_owner("dora")

    for event, owner, refusal in ((lock_the_room, "cli", "at most 1 epochs"),
                                  (register_dora, "dora", "registered just now")):
        def check_then(config, event=event, **kw):
            real(config, **kw)  # the command's own checks pass ...
            event()  # ... and then the room or the name changes

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(submit_module, "check_runnable", check_then)
            assert _claim_run("accuracy", runs, "--owner", owner) == 2
        assert refusal in capsys.readouterr().err
        assert store.run_ids() == [] and db.run_rows(store.engine) == []
        service.set_room(service.Room(), teacher_token=TEACHER_TOKEN, store=store,
                         settings=teacher_settings())
    assert fake_trainer.trained == []


# --- the group rule: a claim's group is shared by its runs, closed to everyone else -----------


def _new(name: str, group: str) -> NewRun:
    return NewRun(name, config_hash=name, group=group)


def test_claim_groups_are_shared_by_claim_runs_and_closed_to_submits(tmp_path):
    store = RunStore(tmp_path / "runs")
    group = "claim-accuracy-cpu-seed0"
    admission.admit(store.engine, "cli", [_new("r1", group)], QueueLimits(), claim=True)
    # another owner's claim run joins the claim's group (a student's comparison it would not)
    admission.admit(store.engine, "alice", [_new("r2", group)], QueueLimits(), claim=True)
    assert _requesters(store) == {"r1": {("cli", group)}, "r2": {("alice", group)}}
    # a submit may neither join a claim's group nor start one (no squatting before a claim run)
    for name, target in (("r3", group), ("r4", "claim-cost-cpu-seed0")):
        with pytest.raises(service.NotAllowed, match="is a claim's"):
            admission.admit(store.engine, "bob", [_new(name, target)], QueueLimits())
    # a claim run names only claims' groups; a student's own group keeps its rule
    with pytest.raises(ValueError, match="only claims' comparisons"):
        admission.admit(store.engine, "cli", [_new("r5", "g-bob")], QueueLimits(), claim=True)
    admission.admit(store.engine, "bob", [_new("r6", "g-bob")], QueueLimits())
    with pytest.raises(service.NotAllowed, match="another owner's"):
        admission.admit(store.engine, "carol", [_new("r7", "g-bob")], QueueLimits())
    assert set(_requesters(store)) == {"r1", "r2", "r6"}
