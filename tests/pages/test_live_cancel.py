"""Live's notice after Cancel comes from the answer ``service.cancel`` gave: a queued run's is
``RunState.CANCELLED`` (the state, not a word of the page's own), which Live's
``CANCEL_ANSWERS`` keys on."""

from __future__ import annotations

from support.apptest import goto, session
from support.configs import tiny_config

from samon_core.runs.states import RunState


def test_cancelling_a_queued_run_says_cancelled(runs):
    from samon_core import service

    key = runs.register_owner("alice")
    run_id = service.submit(tiny_config(method="base", seed=3), owner="alice", group="g1",
                            store=runs, owner_key=key)
    at = goto(session(group="g1", owner="alice", key=key), "app_pages/live.py")
    next(b for b in at.button if b.key == f"cancel_{run_id}").click().run()
    assert not at.exception
    assert runs.read_status(run_id)["state"] == RunState.CANCELLED
    assert "Cancelled." in [i.value for i in at.info]
