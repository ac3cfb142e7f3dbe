"""``simgate demo``: post every fixture order through the running system's HTTP API.

Run it in a second terminal while ``simgate up`` (``make run``) runs. It is a storefront
client and nothing more: numbers come from ``GET /v1/numbers``, orders go to
``POST /v1/orders`` with the three photos, decisions are polled from
``GET /v1/orders/{id}``. Two bad uploads show the 4xx errors a storefront gets back.

Exit status: 0 when every decision and every refusal is the expected one, 1 when one is
not, 2 when the demo could not run (API unreachable, no key, key refused, no numbers).

The fixture loading and posting helpers are shared with ``simgate bench pipeline``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import click
import httpx

from services.devstack import ORDER_FIXTURES

EXIT_MISMATCH = 1
EXIT_CANNOT_RUN = 2
IMAGE_PARTS = (("id_front", "front"), ("id_back", "back"), ("selfie", "selfie"))
# Identities whose expectation depends on how many cards earlier runs already issued.
CARD_COUNT_ORDERS = ("four_cards", "five_cards")

Files = dict[str, tuple[str, bytes, str]]


class DemoError(click.ClickException):
    """The demo could not run; exit 2 with the message on stderr."""

    exit_code = EXIT_CANNOT_RUN


@dataclass(frozen=True, slots=True)
class FixtureOrder:
    name: str
    set: str
    typed_name: str
    id_number: str
    delivery: str
    outcome: str
    ship_mode: str | None
    reasons: tuple[str, ...]

    def matches(self, view: Mapping[str, Any]) -> bool:
        return (
            view.get("status") == "decided"
            and view.get("outcome") == self.outcome
            and view.get("ship_mode") == self.ship_mode
            and sorted(view.get("reasons") or []) == sorted(self.reasons)
        )


def load_fixture_orders(path: Path = ORDER_FIXTURES / "orders.json") -> list[FixtureOrder]:
    spec = json.loads(path.read_text(encoding="utf-8"))
    return [
        FixtureOrder(
            name=o["name"],
            set=o["set"],
            typed_name=o["typed"]["name"],
            id_number=o["typed"]["id_number"],
            delivery=o["delivery"],
            outcome=o["expected"]["outcome"],
            ship_mode=o["expected"]["ship_mode"],
            reasons=tuple(o["expected"]["reasons"]),
        )
        for o in spec["orders"]
    ]


@cache
def _image(set_name: str, suffix: str) -> bytes:
    return (ORDER_FIXTURES / f"{set_name}_{suffix}.jpg").read_bytes()


def image_files(set_name: str) -> Files:
    """The three multipart parts of a fixture set (bytes read once per process)."""
    return {
        part: (f"{part}.jpg", _image(set_name, suffix), "image/jpeg")
        for part, suffix in IMAGE_PARTS
    }


def order_form(order: FixtureOrder, msisdn: str) -> dict[str, str]:
    return {
        "name": order.typed_name,
        "id_number": order.id_number,
        "msisdn": msisdn,
        "delivery": order.delivery,
    }


def post_order(
    client: httpx.Client,
    order: FixtureOrder,
    msisdn: str,
    *,
    idempotency_key: str | None = None,
    files: Files | None = None,
) -> httpx.Response:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return client.post(
        "/v1/orders",
        files=files or image_files(order.set),
        data=order_form(order, msisdn),
        headers=headers,
    )


def api_client(api: str, key: str, timeout: float = 30.0) -> httpx.Client:
    return httpx.Client(
        base_url=api.rstrip("/"),
        headers={"Authorization": f"Bearer {key}"},
        timeout=timeout,
    )


def error_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return f"{resp.status_code} {resp.text[:200]}"
    if isinstance(body, dict) and "error" in body:
        return f"{resp.status_code} {body['error']}: {body.get('detail')}"
    return f"{resp.status_code} {json.dumps(body, ensure_ascii=False)[:200]}"


def available_numbers(client: httpx.Client, count: int) -> list[str]:
    resp = client.get("/v1/numbers", params={"limit": count})
    if resp.status_code == 401:
        raise DemoError(
            f"the API refused the key ({error_text(resp)}); it must be the demo agent key "
            "of the running system (<data_dir>/demo-agent.key, or --key)"
        )
    if resp.status_code != 200:
        raise DemoError(f"GET /v1/numbers failed: {error_text(resp)}")
    numbers: list[str] = resp.json()["msisdns"]
    if len(numbers) < count:
        raise DemoError(
            f"only {len(numbers)} numbers are available, {count} are needed: the demo "
            "inventory is used up (stop the system, remove its data dir, start it again)"
        )
    return numbers


# --- the command --------------------------------------------------------------------


def _default_api() -> str:
    from services.config import get_settings

    s = get_settings()
    # A server bound to every interface is reached on loopback.
    host = "127.0.0.1" if s.api_host in ("0.0.0.0", "::", "") else s.api_host
    return f"http://{host}:{s.api_port}"


def _read_key(key: str | None) -> str:
    if key:
        return key.strip()
    from services.config import get_settings

    path = get_settings().data_dir / "demo-agent.key"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise DemoError(
            f"no demo agent key at {path.resolve()}: start the system with `make run` first "
            "(or `simgate up`; same SIMGATE_DATA_DIR), or pass --key"
        ) from None


def _check_reachable(client: httpx.Client, api: str) -> None:
    try:
        resp = client.get("/healthz", timeout=5.0)
    except httpx.TransportError as exc:
        raise DemoError(
            f"the API at {api} is unreachable ({exc.__class__.__name__}: {exc}): "
            "start the system with `make run` first, or pass --api"
        ) from None
    if resp.status_code != 200:
        raise DemoError(f"the API at {api} is not healthy: {error_text(resp)}")


def _post_all(
    client: httpx.Client, orders: list[FixtureOrder], numbers: list[str]
) -> dict[str, str]:
    """Order name -> order id. The Idempotency-Key makes a retry after a dropped
    connection safe: the API answers with the first order instead of a second one."""
    run_id = secrets.token_hex(4)
    ids: dict[str, str] = {}
    with click.progressbar(orders, label="uploading", item_show_func=_name_of) as bar:
        for order, msisdn in zip(bar, numbers, strict=False):
            key = f"demo-{run_id}-{order.name}"
            try:
                resp = post_order(client, order, msisdn, idempotency_key=key)
            except httpx.TransportError:
                time.sleep(1.0)
                resp = post_order(client, order, msisdn, idempotency_key=key)
            if resp.status_code not in (200, 202):
                raise DemoError(f"posting {order.name} failed: {error_text(resp)}")
            ids[order.name] = resp.json()["order_id"]
    return ids


def _name_of(order: FixtureOrder | None) -> str | None:
    return order.name if order is not None else None


def _wait(client: httpx.Client, ids: dict[str, str], timeout: float) -> dict[str, dict[str, Any]]:
    views: dict[str, dict[str, Any]] = {}
    pending = dict(ids)
    deadline = time.monotonic() + timeout
    with click.progressbar(length=len(ids), label="deciding ") as bar:
        while pending and time.monotonic() < deadline:
            for name, order_id in list(pending.items()):
                resp = client.get(f"/v1/orders/{order_id}")
                if resp.status_code != 200:
                    raise DemoError(f"GET /v1/orders/{order_id} failed: {error_text(resp)}")
                views[name] = resp.json()
                if views[name]["status"] == "decided":
                    del pending[name]
                    bar.update(1)
            if pending:
                time.sleep(0.5)
    return views


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def _print_table(
    orders: list[FixtureOrder], views: dict[str, dict[str, Any]], timeout: float
) -> int:
    header = ("order", "decision", "ship mode", "reasons", "expected", "s", "")
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    good = 0
    for o in orders:
        v = views.get(o.name, {})
        decided = v.get("status") == "decided"
        ok = o.matches(v)
        good += ok
        secs = v.get("seconds_to_decision")
        rows.append(
            (
                o.name,
                _cell(v.get("outcome")) if decided else f"({v.get('status', 'not posted')})",
                _cell(v.get("ship_mode")),
                _cell(v.get("reasons")),
                o.outcome,
                f"{secs:.1f}" if isinstance(secs, (int, float)) else "-",
                "ok" if ok else "MISMATCH",
            )
        )
        if not ok:
            notes.append(
                f"{o.name}: expected {o.outcome} / {_cell(o.ship_mode)} / {_cell(o.reasons)}"
            )
            if not decided:
                notes.append(f"  not decided within --timeout {timeout:.0f} s")
            elif o.name in CARD_COUNT_ORDERS or "policy.card_limit" in (v.get("reasons") or []):
                notes.append(
                    "  card counts grow with every approved demo order, so the card-limit "
                    "expectations hold on a fresh data dir only (the first demo run)"
                )
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    click.echo()
    for r in (header, *rows):
        cells = [c.ljust(w) for c, w in zip(r, widths, strict=True)]
        cells[5] = r[5].rjust(widths[5])  # seconds, right-aligned
        click.echo("  ".join(cells).rstrip())
    for line in notes:
        click.echo(line)
    click.echo(f"{good}/{len(orders)} as expected")
    return good


def _bad_uploads(client: httpx.Client, order: FixtureOrder, msisdn: str) -> int:
    """Post two broken uploads; return how many were refused as expected."""
    front = _image(order.set, "front")
    cases = (
        (
            "a text file as id_front",
            ("notes.txt", b"this is not a photo of an ID card\n", "text/plain"),
            415,
            "upload.not_an_image",
        ),
        (
            "a truncated JPEG as id_front",
            ("front.jpg", front[: len(front) // 2], "image/jpeg"),
            422,
            "upload.truncated",
        ),
    )
    click.echo("\nbad uploads (refused before anything is stored):")
    good = 0
    for label, part, status, code in cases:
        files = image_files(order.set)
        files["id_front"] = part
        resp = post_order(client, order, msisdn, files=files)
        try:
            body: Any = resp.json()
        except ValueError:
            body = resp.text[:200]
        ok = resp.status_code == status and isinstance(body, dict) and body.get("error") == code
        good += ok
        click.echo(f"  {label}: HTTP {resp.status_code}  {json.dumps(body, ensure_ascii=False)}")
        if not ok:
            click.echo(f"    MISMATCH: expected HTTP {status} {code}")
    return good


@click.command("demo")
@click.option(
    "--api",
    default=None,
    metavar="URL",
    help="The running API (default: http://SIMGATE_API_HOST:SIMGATE_API_PORT).",
)
@click.option(
    "--key",
    default=None,
    envvar="SIMGATE_DEMO_KEY",
    help="Agent API key (default: <data_dir>/demo-agent.key written by `simgate up`).",
)
@click.option(
    "--timeout",
    default=180.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds to wait for every decision.",
)
def demo(api: str | None, key: str | None, timeout: float) -> None:
    """Post every fixture order to the running system and show its decisions.

    Start the system first (`make run` / `simgate up`), then run this in a second
    terminal. Exit 0: all as expected; 1: a decision differs; 2: could not run.
    """
    api = api or _default_api()
    api_key = _read_key(key)
    orders = load_fixture_orders()
    with api_client(api, api_key) as client:
        _check_reachable(client, api)
        try:
            numbers = available_numbers(client, len(orders))
            click.echo(f"posting {len(orders)} fixture orders to {api}")
            ids = _post_all(client, orders, numbers)
            views = _wait(client, ids, timeout)
            good = _print_table(orders, views, timeout)
            refused = _bad_uploads(client, orders[0], numbers[0])
        except httpx.TransportError as exc:
            raise DemoError(f"lost the API at {api} ({exc.__class__.__name__}: {exc})") from None
    click.echo(f"{refused}/2 bad uploads refused as expected")
    if good < len(orders) or refused < 2:
        raise click.exceptions.Exit(EXIT_MISMATCH)
