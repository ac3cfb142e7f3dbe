"""``simgate inspect``: channel inspection reports from the running API (R8).

It calls the API over HTTP with a back-office admin token, so every report it fetches is
an ``access.admin`` audit entry like any other back-office access:

    simgate inspect --agent AGENT_ID --period 2026-11-01..2026-11-30 [--format csv]
                    [--chart out.svg]
    simgate inspect --risk --period 2026-11

Period: ``FROM..TO`` (days, both included), one day ``YYYY-MM-DD``, or a month
``YYYY-MM``; omitted: the API's default (the last 30 days). Token: ``--token-file``,
else ``SIMGATE_ADMIN_TOKEN``, else ``<data_dir>/demo-admin.key`` (written by
``simgate up``). Exit 0 with the report on stdout; 2 with ``{"error", "detail"}`` JSON
when the API is unreachable or refuses (401, 403, 404, 422), or a file cannot be
read or written. Registered in :mod:`services.cli`.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
import httpx

EXIT_UNREADABLE = 2
TOKEN_ENV = "SIMGATE_ADMIN_TOKEN"


def parse_period(text: str) -> tuple[str, str]:
    """``FROM..TO``, ``YYYY-MM-DD`` or ``YYYY-MM`` -> (from, to) as ``YYYY-MM-DD``."""
    text = text.strip()
    try:
        if ".." in text:
            a, b = text.split("..", 1)
            first, last = dt.date.fromisoformat(a.strip()), dt.date.fromisoformat(b.strip())
        elif len(text) == 7:
            year, month = (int(p) for p in text.split("-"))
            first = dt.date(year, month, 1)
            last = first.replace(day=calendar.monthrange(year, month)[1])
        elif len(text) == 10:
            first = last = dt.date.fromisoformat(text)
        else:
            raise ValueError(text)
    except ValueError:
        raise ValueError(
            f"--period must be FROM..TO, YYYY-MM-DD or YYYY-MM, got {text!r}"
        ) from None
    return first.isoformat(), last.isoformat()


def _fail(code: str, detail: Any) -> NoReturn:
    click.echo(json.dumps({"error": code, "detail": detail}, ensure_ascii=False))
    sys.exit(EXIT_UNREADABLE)


def _default_url() -> str:
    from services.config import get_settings

    s = get_settings()
    host = "127.0.0.1" if s.api_host in ("0.0.0.0", "::", "") else s.api_host
    return f"http://{host}:{s.api_port}"


def _token(token_file: str | None) -> str:
    if token_file is not None:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            _fail("token.unreadable", str(exc))
    elif os.environ.get(TOKEN_ENV):
        token = os.environ[TOKEN_ENV].strip()
    else:
        from services.config import get_settings

        path = get_settings().data_dir / "demo-admin.key"
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError:
            _fail(
                "token.missing",
                f"no admin token: pass --token-file, set {TOKEN_ENV}, or start the "
                f"system with `simgate up` (writes {path})",
            )
    if not token:
        _fail("token.missing", "the admin token is empty")
    return token


def _get(client: httpx.Client, path: str, params: dict[str, str]) -> httpx.Response:
    try:
        resp = client.get(path, params=params)
    except httpx.TransportError as exc:
        _fail("api.unreachable", f"{client.base_url}: {exc.__class__.__name__}: {exc}")
    if resp.status_code != 200:
        try:
            body = resp.json()
            code, detail = str(body["error"]), body.get("detail")
        except (ValueError, KeyError, TypeError):
            code, detail = f"http.{resp.status_code}", resp.text[:500]
        _fail(code, detail)
    return resp


@click.command("inspect")
@click.option("--agent", "agent_id", default=None, help="The agent to report on.")
@click.option("--risk", is_flag=True, help="Rank every agent by risk, with the evidence.")
@click.option(
    "--period",
    default=None,
    metavar="FROM..TO",
    help="Days, both included (or YYYY-MM-DD, or YYYY-MM); default: the last 30 days.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "csv"]),
    default="json",
    show_default=True,
    help="The agent report as JSON or CSV (--risk is always JSON).",
)
@click.option(
    "--chart",
    "chart",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also write the agent's chart (SVG) to this file.",
)
@click.option("--url", default=None, help="The API (default: SIMGATE_API_HOST:SIMGATE_API_PORT).")
@click.option(
    "--token-file",
    default=None,
    type=click.Path(dir_okay=False),
    help=f"File holding an admin token (else ${TOKEN_ENV}, else <data_dir>/demo-admin.key).",
)
@click.option("--timeout", default=60.0, show_default=True, type=click.FloatRange(min=1))
def inspect_command(
    agent_id: str | None,
    risk: bool,
    period: str | None,
    fmt: str,
    chart: str | None,
    url: str | None,
    token_file: str | None,
    timeout: float,
) -> None:
    """Inspect the sales channel (R8): an agent's report, or agents ranked by risk."""
    if risk == (agent_id is not None):
        _fail("usage.invalid", "give either --agent AGENT_ID or --risk")
    if chart is not None and agent_id is None:
        _fail("usage.invalid", "--chart needs --agent")
    params: dict[str, str] = {}
    if period is not None:
        try:
            params["from"], params["to"] = parse_period(period)
        except ValueError as exc:
            _fail("usage.invalid_period", str(exc))
    token = _token(token_file)
    base = (url or _default_url()).rstrip("/")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=timeout) as client:
        if risk:
            body = _get(client, "/v1/inspection/risk", params).json()
            click.echo(json.dumps(body, ensure_ascii=False))
            return
        assert agent_id is not None
        path = f"/v1/inspection/agents/{agent_id}"
        resp = _get(client, path, {**params, "format": fmt})
        svg = _get(client, f"{path}/chart.svg", params).text if chart else None
    if svg is not None and chart is not None:
        try:
            Path(chart).write_text(svg, encoding="utf-8")
        except OSError as exc:
            _fail("output.unwritable", str(exc))
    if fmt == "csv":
        click.echo(resp.text, nl=False)
    else:
        click.echo(json.dumps(resp.json(), ensure_ascii=False))


@click.command("channel")
@click.option("--seed", "seed_value", default=7, show_default=True, type=int)
@click.option(
    "--start",
    default=None,
    metavar="YYYY-MM-DD",
    help="First day of the two weeks (default: 14 days ago, so it ends yesterday).",
)
def seed_channel(seed_value: int, start: str | None) -> None:
    """Seed three sales agents and two weeks of decided orders (one of them a bulk
    opener) for `simgate inspect`. Synthetic identities; real face embeddings from the
    committed fixture photos. Prints the agents and the period as JSON."""
    from services.config import get_settings
    from services.storage.db import session_factory
    from services.synth.channel import ScenarioExists, seed_channel_scenario

    try:
        first = dt.date.fromisoformat(start) if start else None
    except ValueError:
        _fail("usage.invalid_date", f"--start must be YYYY-MM-DD, got {start!r}")
    settings = get_settings()
    sessions = session_factory(settings.resolved_database_url)
    try:
        info = seed_channel_scenario(sessions, settings, seed=seed_value, start=first)
    except ScenarioExists as exc:
        _fail("seed.exists", f"{exc}; pass another --seed")
    click.echo(json.dumps(info.to_dict(), ensure_ascii=False))
