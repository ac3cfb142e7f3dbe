"""The customer, courier and storefront pages (issue 7): server-rendered HTML with a
little JavaScript that calls the JSON API of the same origin.

- ``GET /``: links to every page;
- ``GET /activate``: video activation of an inactive SIM (R7), ``?iccid=&code=`` fill
  the form (the link printed on the SIM pack);
- ``GET /courier``: the courier's round and the door check (R6);
- ``GET /storefront``: a demo storefront posting an order and following it to the
  decision.

Nothing secret is in a page: the courier's token and the agent's key are typed by the
user and kept in the tab's ``sessionStorage`` only. The pages load nothing from other
origins; the Content-Security-Policy allows scripts from this origin only. Static files
come from ``services/api/static`` (an allow-list of the files shipped there).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, HTMLResponse

from services.api.page_text import texts_for
from services.api.public import render
from services.errors import NotFound

router = APIRouter(tags=["pages"], include_in_schema=False)

STATIC_DIR: Final = Path(__file__).parent / "static"
STATIC_TYPES: Final = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
STATIC_FILES: Final = frozenset(
    p.name for p in STATIC_DIR.iterdir() if p.is_file() and p.suffix in STATIC_TYPES
)
PAGE_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
    "Cache-Control": "no-store",
}
# What a prefilled field may hold: anything else is dropped, not echoed.
ICCID_PARAM: Final = re.compile(r"^\d{19,20}$")
CODE_PARAM: Final = re.compile(r"^[0-9A-Za-z]{4,16}$")


def _page(name: str, page: str, context: dict[str, Any]) -> HTMLResponse:
    response = render(name, {"texts": texts_for(page), **context})
    # render() sets the badge pages' headers (no scripts at all); these pages run ours.
    for header in ("Content-Security-Policy", "Referrer-Policy"):
        del response.headers[header]
    response.headers.update(PAGE_HEADERS)
    return response


@router.get("/", response_class=HTMLResponse)
def index_page() -> HTMLResponse:
    """Where each kind of user starts (no script: the public pages' headers)."""
    return render("index.html", {})


@router.get("/activate", response_class=HTMLResponse)
def activate_page(
    iccid: Annotated[str | None, Query(max_length=40)] = None,
    code: Annotated[str | None, Query(max_length=40)] = None,
) -> HTMLResponse:
    """Activate an inactive SIM with its code and a selfie video."""
    return _page(
        "activate.html",
        "activate",
        {
            "iccid": iccid if iccid and ICCID_PARAM.match(iccid) else "",
            "code": code if code and CODE_PARAM.match(code) else "",
        },
    )


@router.get("/courier", response_class=HTMLResponse)
def courier_page() -> HTMLResponse:
    """The courier's round and the door check."""
    return _page("courier.html", "courier", {})


@router.get("/storefront", response_class=HTMLResponse)
def storefront_page() -> HTMLResponse:
    """A demo storefront: post an order, watch it to the decision."""
    return _page("storefront.html", "order", {})


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    if name not in STATIC_FILES:
        raise NotFound(f"no static file {name}", code="not_found")
    path = STATIC_DIR / name
    return FileResponse(
        path,
        media_type=STATIC_TYPES[path.suffix],
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
