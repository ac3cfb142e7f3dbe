"""Enqueue by task *name*: the API never imports the tasks (nor the vision models)."""

from __future__ import annotations

import logging

from celery import Celery

from services.workers.celery_app import get_app

log = logging.getLogger(__name__)

VERIFY = "simgate.verify_order"
CHECK = "simgate.check_order"
WEBHOOK = "simgate.deliver_webhook"
SWEEP = "simgate.sweep"
HANDOVER = "simgate.verify_handover"
ACTIVATION = "simgate.verify_activation"
QUEUES = {
    VERIFY: "vision",
    CHECK: "default",
    WEBHOOK: "default",
    SWEEP: "default",
    HANDOVER: "vision",
    ACTIVATION: "vision",
}


def send(task: str, arg: str, *, countdown: float | None = None, app: Celery | None = None) -> bool:
    """True when the broker took the message. A failure is logged, never raised: the
    order is committed already, and the sweeper re-enqueues what was never picked up."""
    try:
        (app or get_app()).send_task(
            task,
            args=(arg,),
            queue=QUEUES[task],
            countdown=countdown,
            # Bounded: a request must not hang on a dead broker.
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.3},
        )
        return True
    except Exception as exc:  # broker down, connection reset
        log.warning("enqueue %s(%s) failed: %s; the sweeper will retry", task, arg, exc)
        return False
