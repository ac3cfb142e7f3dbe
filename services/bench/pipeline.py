"""``simgate bench pipeline``: orders through the real HTTP API into real Celery workers.

A private stack in a temporary data dir (bundled redis, SQLite, mock lookup, API; no
beat), then three phases, each with a freshly started worker that is stopped after it
and warmed up first with two orders per pool process (each process loads the OCR and
face models on its first order; that one-off cost is shown apart, not measured in):

  c1     N orders posted as fast as a few client threads can, 1 worker process
  c2     the same with 2 worker processes
  paced  --paced-count orders at --rate orders/min (half the target), 2 processes

Throughput is decided orders over first post -> last decision. Latency is the API's
``seconds_to_decision`` (created_at -> decided_at); "e2e" adds the upload itself (client
clock before the post -> decided_at; one machine, one clock). CPU per order is the
worker's process tree (main + prefork children, reaped ones included) and the API
process, measured from the end of the warm-up to just before the worker is stopped.

Orders cycle through the fixture orders, each with its own msisdn. Approved orders of
one identity add cards, so the "good" identity soon reaches the 5-card limit and goes
to store_visit_required: the work per order is the same, and the outcome mix is shown.

Target: a 2-core machine decides >= 90 orders/min (c2) at p95 < 3 s when loaded at half
that rate (paced). Exit 0: both met; 1: a target missed; 2: the benchmark could not run.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import httpx
import psutil

from services.demo import FixtureOrder, api_client, error_text, load_fixture_orders, post_order
from services.devstack import (
    ORDER_FIXTURES,
    Proc,
    Stack,
    StackError,
    base_env,
    prepare,
    start_api,
    start_lookup,
    start_redis,
    start_worker,
)

TARGET_PER_MIN = 90.0
TARGET_P95_S = 3.0
EXIT_MISS = 1
EXIT_CANNOT_RUN = 2
POLL_S = 1.0
PROGRESS_EVERY_S = 10.0
MSISDN_PREFIX = "139"  # the seeded demo inventory uses 130-133: no overlap


class BenchError(RuntimeError):
    """The benchmark could not run (a process died, a phase timed out)."""


# --- pure helpers (unit-tested) -------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks (numpy's default);
    NaN for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    if not values:
        return math.nan
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def per_minute(count: int, seconds: float) -> float:
    """Rate in events per minute; NaN when no time passed."""
    if seconds <= 0:
        return math.nan
    return count * 60.0 / seconds


def parse_time(value: str) -> float:
    """An API timestamp as epoch seconds; naive ones are UTC (SQLite drops the zone)."""
    t = dt.datetime.fromisoformat(value)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.timestamp()


def ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


# --- CPU accounting --------------------------------------------------------------------


def tree_cpu_s(pid: int) -> float:
    """User+system CPU seconds of a process, its live descendants, and its reaped
    children (a prefork pool child replaced mid-run still counts)."""
    try:
        proc = psutil.Process(pid)
        t = proc.cpu_times()
        total = float(t.user + t.system + t.children_user + t.children_system)
        kids = proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0
    for kid in kids:
        try:
            k = kid.cpu_times()
        except psutil.NoSuchProcess:  # exited between listing and reading
            continue
        total += float(k.user + k.system)
    return total


def machine_busy_s() -> float:
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


@dataclass
class CpuMark:
    worker: float
    api: float
    others_ours: float  # redis + lookup + this client
    machine: float
    wall: float

    @classmethod
    def take(cls, worker: Proc, stack: Stack) -> CpuMark:
        ours = sum(tree_cpu_s(stack.procs[n].popen.pid) for n in ("redis", "lookup"))
        me = psutil.Process().cpu_times()
        return cls(
            worker=tree_cpu_s(worker.popen.pid),
            api=tree_cpu_s(stack.procs["api"].popen.pid),
            others_ours=ours + me.user + me.system,
            machine=machine_busy_s(),
            wall=time.monotonic(),
        )


# --- one phase -------------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    concurrency: int
    orders: int
    rate_per_min: float | None  # offered rate (paced) or None (as fast as possible)
    posted: int = 0
    post_errors: list[str] = field(default_factory=list)
    decided: int = 0
    wall_s: float = math.nan
    per_min: float = math.nan
    p50_s: float = math.nan
    p95_s: float = math.nan
    e2e_p50_s: float = math.nan
    e2e_p95_s: float = math.nan
    worker_cpu_s: float = math.nan
    api_cpu_s: float = math.nan
    worker_cpu_per_order_s: float = math.nan
    api_cpu_per_order_s: float = math.nan
    other_load_cores: float = math.nan  # other users' processes, average cores busy
    outcomes: dict[str, int] = field(default_factory=dict)
    warmup_s: float = math.nan  # a fresh worker's first orders: post -> last decision


class Tracker:
    """Posted and decided orders of one phase; the poster threads and the poller share it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: dict[str, float] = {}  # order id -> client time before its post
        self.views: dict[str, dict[str, Any]] = {}  # decided order id -> view
        self.errors: list[str] = []
        self.posting_done = False
        self.cancel = threading.Event()  # the phase failed: post nothing more

    def counts(self) -> tuple[int, int]:
        with self.lock:
            return len(self.started), len(self.views)

    def pending(self) -> set[str]:
        with self.lock:
            return set(self.started) - set(self.views)


class Bench:
    def __init__(self, stack: Stack, api: str, key: str, clients: int) -> None:
        self.stack = stack
        self.api = api
        self.key = key
        self.clients = clients
        self.local = threading.local()
        self.poll_client = api_client(api, key)

    def close(self) -> None:
        self.poll_client.close()

    def _client(self) -> httpx.Client:
        # One client per poster thread: no shared connection pool between threads.
        client: httpx.Client | None = getattr(self.local, "client", None)
        if client is None:
            client = api_client(self.api, self.key, timeout=60.0)
            self.local.client = client
        return client

    def _post_one(self, tracker: Tracker, order: FixtureOrder, msisdn: str) -> None:
        idem = "bench-" + secrets.token_hex(8)
        t0 = time.time()
        last = ""
        for attempt in range(3):
            if tracker.cancel.is_set():
                return
            try:
                resp = post_order(self._client(), order, msisdn, idempotency_key=idem)
            except httpx.TransportError as exc:
                last = f"{exc.__class__.__name__}: {exc}"
            else:
                if resp.status_code in (200, 202):
                    with tracker.lock:
                        tracker.started[resp.json()["order_id"]] = t0
                    return
                last = error_text(resp)
                if resp.status_code != 409:  # only "busy" is worth a retry
                    break
            time.sleep(0.5 * (attempt + 1))
        with tracker.lock:
            tracker.errors.append(f"{order.name} {msisdn}: {last}")

    def _post_all(
        self, tracker: Tracker, items: list[tuple[FixtureOrder, str]], interval: float | None
    ) -> None:
        try:
            with ThreadPoolExecutor(self.clients, thread_name_prefix="poster") as pool:
                t0 = time.monotonic()
                for i, (order, msisdn) in enumerate(items):
                    if interval is not None:
                        # On a schedule, not after the previous post: a slow upload must
                        # not lower the offered rate.
                        tracker.cancel.wait(t0 + i * interval - time.monotonic())
                    if tracker.cancel.is_set():
                        break
                    pool.submit(self._post_one, tracker, order, msisdn)
        finally:
            tracker.posting_done = True

    def _poll(self, tracker: Tracker) -> None:
        """Decided views of pending orders, newest first, one page of 200 at a time
        (one list request instead of one GET per pending order keeps the API's share
        of the two cores small)."""
        pending = tracker.pending()
        before: str | None = None
        while pending:
            params: dict[str, str | int] = {"limit": 200}
            if before:
                params["before"] = before
            resp = self.poll_client.get("/v1/orders", params=params)
            if resp.status_code != 200:
                raise BenchError(f"GET /v1/orders failed: {error_text(resp)}")
            page = resp.json()
            for view in page["orders"]:
                if view["order_id"] in pending:
                    pending.discard(view["order_id"])
                    if view["status"] == "decided":
                        with tracker.lock:
                            tracker.views[view["order_id"]] = view
            before = page["next_before"]
            if not before:
                break

    def _drive(
        self,
        label: str,
        worker: Proc,
        items: list[tuple[FixtureOrder, str]],
        interval: float | None,
        timeout: float,
    ) -> Tracker:
        """Post ``items`` (every ``interval`` s, or at once) and wait for every decision."""
        tracker = Tracker()
        poster = threading.Thread(
            target=self._post_all, args=(tracker, items, interval), daemon=True
        )
        poster.start()
        try:
            return self._wait(label, worker, tracker, poster, len(items), timeout)
        except BaseException:
            tracker.cancel.set()
            raise

    def _wait(
        self,
        label: str,
        worker: Proc,
        tracker: Tracker,
        poster: threading.Thread,
        planned: int,
        timeout: float,
    ) -> Tracker:
        t0 = time.monotonic()
        next_report = t0 + PROGRESS_EVERY_S
        while True:
            for proc in (worker, self.stack.procs["api"], self.stack.procs["lookup"]):
                if not proc.alive():
                    raise BenchError(f"[{label}] {proc.name} exited\n{proc.tail()}")
            time.sleep(POLL_S)
            self._poll(tracker)
            posted, decided = tracker.counts()
            if tracker.posting_done and not poster.is_alive() and decided == posted:
                return tracker
            now = time.monotonic()
            if now - t0 > timeout:
                raise BenchError(
                    f"[{label}] timed out after {timeout:.0f} s: {decided} of {posted} posted "
                    f"orders decided, {planned} planned (raise --phase-timeout or lower "
                    f"--count); worker log: {worker.log_path}"
                )
            if now >= next_report:
                click.echo(
                    f"[{label}]   posted {posted}/{planned}, decided {decided}, {now - t0:.0f} s"
                )
                next_report = now + PROGRESS_EVERY_S

    def run_phase(
        self,
        name: str,
        concurrency: int,
        items: list[tuple[FixtureOrder, str]],
        warmup: list[tuple[FixtureOrder, str]],
        *,
        rate_per_min: float | None,
        timeout: float,
    ) -> PhaseResult:
        result = PhaseResult(name, concurrency, len(items), rate_per_min)
        click.echo(
            f"[{name}] starting a worker with {concurrency} process(es); {len(items)} orders "
            + (f"at {rate_per_min:g}/min" if rate_per_min else "as fast as possible")
        )
        worker = start_worker(self.stack, concurrency, name=f"worker-{name}")
        try:
            # Each pool process loads the OCR and face models on its first order; a
            # long-running worker pays that once, so it is measured apart.
            warm = self._drive(name, worker, warmup, None, timeout)
            if warm.errors or not warm.views:
                raise BenchError(f"[{name}] warm-up orders failed: {warm.errors[:3]}")
            result.warmup_s = max(
                parse_time(v["decided_at"]) - warm.started[i] for i, v in warm.views.items()
            )
            click.echo(f"[{name}] warm ({len(warmup)} orders, {result.warmup_s:.1f} s)")
            before = CpuMark.take(worker, self.stack)
            interval = 60.0 / rate_per_min if rate_per_min else None
            tracker = self._drive(name, worker, items, interval, timeout)
            # Read CPU before stopping: a stopped pool's children are gone.
            after = CpuMark.take(worker, self.stack)
        finally:
            self.stack.stop(worker.name)
        self._summarise(result, tracker, before, after)
        click.echo(
            f"[{name}] done: {result.decided}/{result.orders} decided, "
            f"{result.per_min:.1f} orders/min, p95 {result.p95_s:.2f} s"
            + (f", {len(result.post_errors)} post errors" if result.post_errors else "")
        )
        return result

    @staticmethod
    def _summarise(result: PhaseResult, tracker: Tracker, a: CpuMark, b: CpuMark) -> None:
        views = list(tracker.views.values())
        result.posted = len(tracker.started)
        result.post_errors = list(tracker.errors)
        result.decided = len(views)
        result.outcomes = dict(Counter(str(v["outcome"]) for v in views).most_common())
        if views:
            first_post = min(tracker.started.values())
            decided_at = {v["order_id"]: parse_time(v["decided_at"]) for v in views}
            result.wall_s = max(decided_at.values()) - first_post
            result.per_min = per_minute(len(views), result.wall_s)
            lat = [float(v["seconds_to_decision"]) for v in views]
            e2e = [decided_at[i] - tracker.started[i] for i in decided_at]
            result.p50_s, result.p95_s = percentile(lat, 50), percentile(lat, 95)
            result.e2e_p50_s, result.e2e_p95_s = percentile(e2e, 50), percentile(e2e, 95)
        n = max(len(views), 1)
        result.worker_cpu_s = b.worker - a.worker
        result.api_cpu_s = b.api - a.api
        result.worker_cpu_per_order_s = result.worker_cpu_s / n
        result.api_cpu_per_order_s = result.api_cpu_s / n
        wall = b.wall - a.wall
        ours = result.worker_cpu_s + result.api_cpu_s + (b.others_ours - a.others_ours)
        if wall > 0:
            result.other_load_cores = max(0.0, (b.machine - a.machine - ours) / wall)


# --- stack and report ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_stack(data_dir: Path) -> tuple[Stack, str, str]:
    spec = json.loads((ORDER_FIXTURES / "orders.json").read_text(encoding="utf-8"))
    api_port, lookup_port = free_port(), free_port()
    env = base_env(data_dir)
    # A private stack: nothing of the caller's configuration (a real database, a real
    # broker) may leak in.
    for k in [k for k in env if k.startswith("SIMGATE_") and k != "SIMGATE_DATA_DIR"]:
        del env[k]
    env.update(
        {
            "SIMGATE_ENV": "test",
            "SIMGATE_API_PORT": str(api_port),
            "SIMGATE_LOOKUP_PORT": str(lookup_port),
            # The fixtures' expectations (expiry) are stated for their reference date.
            "SIMGATE_TODAY": str(spec["reference_date"]),
        }
    )
    stack = Stack(data_dir, env)
    start_redis(stack)
    key = prepare(stack.settings)
    start_lookup(stack, lookup_port)
    start_api(stack, api_port)
    return stack, f"http://127.0.0.1:{api_port}", key


def _add_numbers(stack: Stack, count: int) -> list[str]:
    """``count`` fresh numbers for the benchmark, spread over the demo provinces."""
    from services.carrier import inventory
    from services.storage.db import session_factory

    provinces = sorted(inventory.DEMO_PROVINCES)
    numbers = [f"{MSISDN_PREFIX}{provinces[i % len(provinces)]}{i:06d}" for i in range(count)]
    sessions = session_factory(stack.settings.resolved_database_url)
    with sessions() as session, session.begin():
        for p in provinces:
            inventory.add_sims(session, p, [m for m in numbers if m[3:5] == p])
    return numbers


def _no_nan(obj: Any) -> Any:
    """NaN is not JSON: a value that could not be measured is null."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_no_nan(v) for v in obj]
    return obj


def _fmt(x: float, spec: str) -> str:
    return "-" if math.isnan(x) else format(x, spec)


def _print_results(phases: list[PhaseResult], out: dict[str, Any]) -> None:
    click.echo("")
    head = (
        f"{'phase':<7}{'procs':>6}{'offered':>9}{'decided':>9}{'orders/min':>11}"
        f"{'p50 s':>7}{'p95 s':>7}{'e2e p95':>8}{'worker CPU s':>13}{'API CPU s':>10}"
        f"{'others':>7}"
    )
    click.echo(head)
    click.echo(
        f"{'':<7}{'':>6}{'/min':>9}{'':>9}{'':>11}{'':>7}{'':>7}{'':>8}{'/order':>13}"
        f"{'/order':>10}{'cores':>7}"
    )
    for p in phases:
        offered = f"{p.rate_per_min:g}" if p.rate_per_min else "max"
        click.echo(
            f"{p.name:<7}{p.concurrency:>6}{offered:>9}{f'{p.decided}/{p.orders}':>9}"
            f"{_fmt(p.per_min, '.1f'):>11}{_fmt(p.p50_s, '.2f'):>7}{_fmt(p.p95_s, '.2f'):>7}"
            f"{_fmt(p.e2e_p95_s, '.2f'):>8}{_fmt(p.worker_cpu_per_order_s, '.2f'):>13}"
            f"{_fmt(p.api_cpu_per_order_s, '.3f'):>10}{_fmt(p.other_load_cores, '.2f'):>7}"
        )
    click.echo("")
    for p in phases:
        mix = ", ".join(f"{k} {v}" for k, v in p.outcomes.items())
        click.echo(
            f"{p.name}: outcomes {mix}; warm-up (excluded): {2 * p.concurrency} orders "
            f"decided {_fmt(p.warmup_s, '.1f')} s after posting"
        )
        for err in p.post_errors[:5]:
            click.echo(f"  post error: {err}")
    t = out["targets"]
    click.echo("")
    click.echo(f"2-process / 1-process throughput: {_fmt(out['scaling_c2_over_c1'], '.2f')}x")
    click.echo(
        f"target: >= {TARGET_PER_MIN:g} orders/min with 2 worker processes: "
        f"{_fmt(t['throughput']['value'], '.1f')}  {'PASS' if t['throughput']['pass'] else 'MISS'}"
    )
    click.echo(
        f"target: p95 < {TARGET_P95_S:g} s at {t['latency']['rate_per_min']:g} orders/min: "
        f"{_fmt(t['latency']['value'], '.2f')} s  {'PASS' if t['latency']['pass'] else 'MISS'}"
    )
    m = out["machine"]
    click.echo(
        f"machine: {m['cpu_count']} logical cores ({m['physical_cores']} physical), shared: "
        "'others' is the average load of processes outside this benchmark; latencies are "
        "medians (p50) and p95 of one run, not means"
    )


@click.command("pipeline")
@click.option(
    "--count",
    default=200,
    show_default=True,
    type=click.IntRange(min=1),
    help="Orders per throughput phase (1 and 2 worker processes).",
)
@click.option(
    "--paced-count",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="Orders in the paced phase.",
)
@click.option(
    "--rate",
    default=45.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Orders per minute offered in the paced phase (half the target).",
)
@click.option(
    "--clients",
    default=4,
    show_default=True,
    type=click.IntRange(min=1),
    help="Client threads posting in parallel.",
)
@click.option(
    "--phase-timeout",
    default=600.0,
    show_default=True,
    type=click.FloatRange(min=10),
    help="Seconds a phase may take.",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the results here.",
)
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    help="Use this (new or empty) data dir and keep it: database, logs.",
)
def bench_pipeline(
    count: int,
    paced_count: int,
    rate: float,
    clients: int,
    phase_timeout: float,
    json_out: Path | None,
    keep: Path | None,
) -> None:
    """Orders through the HTTP API into Celery workers: orders/min, latency, CPU/order."""
    if keep is not None:
        if keep.exists() and any(keep.iterdir()):
            raise click.BadParameter(f"{keep} is not empty", param_hint="--keep")
        keep.mkdir(parents=True, exist_ok=True)
        data_dir = keep
    else:
        data_dir = Path(tempfile.mkdtemp(prefix="simgate-bench-"))
    phases: list[PhaseResult] = []
    stack: Stack | None = None
    bench: Bench | None = None
    try:
        click.echo(f"starting a private stack in {data_dir} ...")
        stack, api, key = _start_stack(data_dir)
        fixtures = load_fixture_orders()
        # (name, worker processes, orders, offered orders/min or None for "at once")
        plan = [("c1", 1, count, None), ("c2", 2, count, None), ("paced", 2, paced_count, rate)]
        warmups = sum(2 * c for _, c, _, _ in plan)  # two per pool process
        numbers = iter(_add_numbers(stack, sum(n for *_, n, _ in plan) + warmups))
        orders = itertools.cycle(fixtures)
        bench = Bench(stack, api, key, clients)

        def items(n: int) -> list[tuple[FixtureOrder, str]]:
            return [(next(orders), next(numbers)) for _ in range(n)]

        for name, procs, n, per_min in plan:
            phases.append(
                bench.run_phase(
                    name,
                    procs,
                    items(n),
                    items(2 * procs),
                    rate_per_min=per_min,
                    timeout=phase_timeout,
                )
            )
    except (BenchError, StackError) as exc:
        click.echo(f"bench pipeline failed: {exc}", err=True)
        if keep is None:
            click.echo("(rerun with --keep DIR to keep the data dir and its logs)", err=True)
        raise click.exceptions.Exit(EXIT_CANNOT_RUN) from None
    finally:
        if bench is not None:
            bench.close()
        if stack is not None:
            stack.stop()
        if keep is None:
            shutil.rmtree(data_dir, ignore_errors=True)

    c1, c2, paced = phases
    throughput_ok = c2.per_min >= TARGET_PER_MIN and c2.decided == c2.orders
    latency_ok = paced.p95_s < TARGET_P95_S and paced.decided == paced.orders
    out: dict[str, Any] = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "physical_cores": psutil.cpu_count(logical=False),
            "shared": True,
        },
        "params": {
            "count": count,
            "paced_count": paced_count,
            "rate_per_min": rate,
            "clients": clients,
        },
        "phases": [asdict(p) for p in phases],
        "scaling_c2_over_c1": ratio(c2.per_min, c1.per_min),
        "targets": {
            "throughput": {
                "min_per_min": TARGET_PER_MIN,
                "value": c2.per_min,
                "pass": throughput_ok,
            },
            "latency": {
                "max_p95_s": TARGET_P95_S,
                "rate_per_min": rate,
                "value": paced.p95_s,
                "pass": latency_ok,
            },
        },
    }
    _print_results(phases, out)
    if json_out is not None:
        json_out.write_text(json.dumps(_no_nan(out), indent=2) + "\n", encoding="utf-8")
        click.echo(f"results written to {json_out}")
    if keep is not None:
        click.echo(f"data dir kept: {keep} (logs under {keep / 'logs'})")
    if not (throughput_ok and latency_ok):
        raise click.exceptions.Exit(EXIT_MISS)
