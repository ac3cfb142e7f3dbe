"""The Celery application: Redis broker, a ``vision`` queue for CPU work and ``default``
for I/O, late acks so a killed worker's message is redelivered, and a periodic sweeper."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from celery import Celery, signals
from kombu.entity import Queue

from services.config import Settings, get_settings


def make_celery(settings: Settings) -> Celery:
    app = Celery("simgate", broker=settings.resolved_redis_url, include=["services.workers.tasks"])
    app.conf.update(
        task_queues=(Queue("vision"), Queue("default")),
        task_default_queue="default",
        task_routes={
            name: {"queue": "vision"}
            for name in (
                "simgate.verify_order",
                "simgate.verify_handover",
                "simgate.verify_activation",
            )
        },
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=500,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3.0,
        # Unacked messages of a worker that died come back after this long; the sweeper
        # usually gets there first (stuck_after_s).
        broker_transport_options={"visibility_timeout": max(60.0, settings.stuck_after_s * 4)},
        beat_schedule={
            "sweep": {
                "task": "simgate.sweep",
                "schedule": settings.sweep_every_s,
                "args": ("beat",),
                "options": {"queue": "default", "expires": settings.sweep_every_s},
            }
        },
        timezone="UTC",
    )
    return app


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _mask_id_numbers(logger: Any = None, **_: Any) -> None:
    """R10: nothing that looks like an ID number reaches a worker's log in full."""
    from services.privacy import MaskIdNumbersFilter, install_log_masking

    install_log_masking()
    if logger is not None:
        for handler in logger.handlers:
            handler.addFilter(MaskIdNumbersFilter())


@lru_cache(maxsize=1)
def get_app() -> Celery:
    return make_celery(get_settings())


app = get_app()
