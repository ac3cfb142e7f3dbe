"""``simgate up | api | worker | beat | db upgrade | seed | audit verify``.

Registered in :mod:`services.cli`.
"""

from __future__ import annotations

import os
import sys

import click

from services.inspect_cli import seed_channel


@click.command("up")
@click.option("--concurrency", type=int, default=0, help="Worker processes (default: cores).")
def up(concurrency: int) -> None:
    """Start everything on one machine (bundled Redis, SQLite, mock lookup, API, worker)."""
    from services.config import get_settings
    from services.devstack import up as run_up

    settings = get_settings()
    n = concurrency or settings.worker_concurrency or os.cpu_count() or 1
    sys.exit(run_up(settings, concurrency=n, echo=click.echo))


@click.command("api")
@click.option("--host", default=None, help="Default: SIMGATE_API_HOST (127.0.0.1).")
@click.option("--port", type=int, default=None, help="Default: SIMGATE_API_PORT (8000).")
@click.option("--workers", type=int, default=1, show_default=True)
def api(host: str | None, port: int | None, workers: int) -> None:
    """Run the HTTP API (uvicorn)."""
    import uvicorn

    from services.config import get_settings

    s = get_settings()
    uvicorn.run(
        "services.api.app:create_app",
        factory=True,
        host=host or s.api_host,
        port=port or s.api_port,
        workers=workers,
        log_level="info",
    )


@click.command("worker")
@click.option("--queues", default="vision,default", show_default=True)
@click.option("--concurrency", type=int, default=0, help="Processes (default: cores).")
@click.option("--name", default="worker", show_default=True)
def worker(queues: str, concurrency: int, name: str) -> None:
    """Run a Celery worker."""
    from services.workers.celery_app import get_app

    n = concurrency or os.cpu_count() or 1
    get_app().worker_main(
        ["worker", "-Q", queues, "-c", str(n), "-n", f"{name}@%h", "-l", "INFO",
         "--without-gossip", "--without-mingle"]
    )  # fmt: skip


@click.command("beat")
@click.option("--schedule", default=None, help="Default: <SIMGATE_DATA_DIR>/run/beat-schedule.")
def beat(schedule: str | None) -> None:
    """Run Celery beat (the sweeper that re-enqueues stuck orders)."""
    from services.config import get_settings
    from services.workers.celery_app import get_app

    if schedule is None:
        run = get_settings().data_dir / "run"
        run.mkdir(parents=True, exist_ok=True)
        schedule = str(run / "beat-schedule")
    get_app().start(["beat", "-s", schedule, "-l", "INFO"])


@click.group("db")
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every Alembic migration (idempotent)."""
    from services.config import get_settings
    from services.storage.db import upgrade

    url = get_settings().resolved_database_url
    upgrade(url)
    click.echo("schema is up to date")


@click.group("seed", invoke_without_command=True)
@click.pass_context
def seed(ctx: click.Context) -> None:
    """Migrate, then create the demo agent, the SIM inventory and the fixtures' cards
    (`simgate seed channel`: also the sales-channel scenario for inspection)."""
    from services.config import get_settings
    from services.devstack import prepare

    key = prepare(get_settings())
    if ctx.invoked_subcommand is None:
        click.echo(f"demo agent API key: {key}")


@click.group("audit")
def audit_group() -> None:
    """The hash-chained audit trail."""


@audit_group.command("verify")
@click.option("--json", "as_json", is_flag=True)
def audit_verify(as_json: bool) -> None:
    """Recompute the chain; exit 1 at the first changed, removed or reordered entry."""
    import json

    from sqlalchemy import select

    from services.config import get_settings
    from services.storage import audit
    from services.storage.db import session_factory
    from services.storage.models import AuditEntry

    sessions = session_factory(get_settings().resolved_database_url)
    with sessions() as session:
        result = audit.verify(session)
        head = session.execute(
            select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
        ).first()
    out = {
        "ok": result.ok,
        "entries": result.entries,
        "first_bad_seq": result.first_bad_seq,
        "problem": result.problem,
        "head": {"seq": head[0], "hash": head[1]} if head else None,
    }
    if as_json:
        click.echo(json.dumps(out))
    elif result.ok:
        click.echo(f"audit log OK: {result.entries} entries; head {out['head']}")
    else:
        click.echo(f"audit log BROKEN at seq {result.first_bad_seq}: {result.problem}", err=True)
    sys.exit(0 if result.ok else 1)


@click.group("staff")
def staff_group() -> None:
    """Back-office users: admins (agent registry, inspection) and auditors (regulator)."""


@staff_group.command("add")
@click.option("--role", type=click.Choice(["admin", "auditor"]), required=True)
@click.option("--name", required=True, help="Who this is (shown in the audit log).")
def staff_add(role: str, name: str) -> None:
    """Create a back-office user and print its token (shown once; only a hash is kept).
    The creation is itself an audit entry."""
    from services.config import get_settings
    from services.staff import create_staff
    from services.storage import audit
    from services.storage.db import session_factory, upgrade

    url = get_settings().resolved_database_url
    upgrade(url)
    with session_factory(url)() as session, session.begin():
        user, token = create_staff(session, name, role)
        audit.append(
            session,
            kind="staff.created",
            subject=user.id,
            actor="cli",
            payload={"role": role, "name": name},
        )
    click.echo(f"{user.id} ({role}): {token}")


@staff_group.command("disable")
@click.argument("staff_id")
def staff_disable(staff_id: str) -> None:
    """Stop a back-office user's token at once (audited)."""
    from services.config import get_settings
    from services.storage import audit
    from services.storage.db import session_factory
    from services.storage.models import StaffUser

    with session_factory(get_settings().resolved_database_url)() as session, session.begin():
        user = session.get(StaffUser, staff_id)
        if user is None:
            click.echo(f"no staff user {staff_id}", err=True)
            sys.exit(2)
        user.status = "disabled"
        audit.append(session, kind="staff.disabled", subject=user.id, actor="cli", payload={})
    click.echo(f"{staff_id} disabled")


seed.add_command(seed_channel)
COMMANDS = (up, api, worker, beat, db, seed, audit_group, staff_group)
