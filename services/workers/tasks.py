"""Thin Celery tasks: they take ids, call pipeline.py, and enqueue the next step.

Late acks + reject_on_worker_lost (celery_app.py) redeliver a message whose worker
died; retries for transient errors (database busy, blob store hiccup) are bounded and
back off. The lookup's own waiting is not a Celery retry: it re-enqueues with a delay
until the order's lookup deadline, after which the order goes to review.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from sqlalchemy.exc import OperationalError

from services.config import get_settings
from services.storage.blobs import BlobError
from services.workers import enqueue, pipeline
from services.workers.celery_app import app

log = logging.getLogger(__name__)
TRANSIENT = (OperationalError, BlobError, ConnectionError)


@lru_cache(maxsize=1)
def ctx() -> pipeline.Context:
    return pipeline.Context(get_settings())


@app.task(
    name=enqueue.VERIFY,
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=5,
)
def verify_order(order_id: str) -> None:
    if pipeline.verify_images(ctx(), order_id):
        enqueue.send(enqueue.CHECK, order_id)


@app.task(
    name=enqueue.CHECK,
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=5,
)
def check_order(order_id: str) -> None:
    result = pipeline.check_and_decide(ctx(), order_id)
    if result.retry_in_s is not None:
        enqueue.send(enqueue.CHECK, order_id, countdown=result.retry_in_s)
    if result.webhook_id:
        enqueue.send(enqueue.WEBHOOK, result.webhook_id)


@app.task(name=enqueue.WEBHOOK, autoretry_for=TRANSIENT, retry_backoff=2, max_retries=5)
def deliver_webhook(delivery_id: str) -> None:
    result = pipeline.deliver_webhook(ctx(), delivery_id)
    if result.retry_in_s is not None:
        enqueue.send(enqueue.WEBHOOK, delivery_id, countdown=result.retry_in_s)


@app.task(name=enqueue.SWEEP, ignore_result=True)
def sweep(_source: str = "beat") -> int:
    due = pipeline.sweep(ctx())
    for task, arg in due:
        enqueue.send(task, arg)
    if due:
        log.warning("sweeper re-enqueued %d item(s): %s", len(due), due[:10])
    return len(due)


@app.task(name=enqueue.HANDOVER, autoretry_for=TRANSIENT, retry_backoff=2, max_retries=5)
def verify_handover(attempt_id: str) -> None:
    from services.workers.handover import verify_handover as run

    run(ctx(), attempt_id)


@app.task(name=enqueue.ACTIVATION, autoretry_for=TRANSIENT, retry_backoff=2, max_retries=5)
def verify_activation(challenge_id: str) -> None:
    from services.workers.activation import verify_activation as run

    run(ctx(), challenge_id)
