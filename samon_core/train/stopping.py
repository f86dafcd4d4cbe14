"""A stop that does not end the run: ``Released``, raised by a trainer's ``should_stop``.

``should_stop()`` (polled by the trainer every step, loop.py) answers True to cancel the run: it
ends 'cancelled'. A worker that stops (SIGTERM, its parent gone) or whose run was taken back
from it must not end the run, because another worker resumes it from its checkpoint: its
``should_stop`` raises ``Released`` instead. The trainer stops where it is and writes no end (the
run stays 'running', held by the worker; its summary's state is ``RELEASED``), and the worker
puts it back in the queue in one transaction (``scheduler.release``): a reader sees 'running'
then 'queued', never 'cancelled' on the way. A trainer that does not know ``Released`` (a
stand-in) lets it through, and the worker releases the run all the same.

No torch: the worker, which imports no torch, raises it.
"""

from __future__ import annotations

# The summary's state of a released run. Not a RunState: the run did not end, its worker gives
# it back.
RELEASED = "released"


class Released(Exception):
    """The caller stops the training without ending the run (module doc)."""
