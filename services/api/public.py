"""Agent badges over HTTP (R4): issuing one (admin), the published agent list, the badge
QR images, the carrier's public key and revocation list, and the badge check a phone
opens after scanning a badge.

The public routes need no authentication and show only what the registry publishes
(identifiers and scope, never contacts or keys). The badge QR codes hold the URL of
``GET /verify/agent`` with the token, so a phone camera opens the check page; the same
route answers JSON to programs. Nothing here reads pixels: the QR codes are rendered
(qrcode + PIL, light), never decoded, in this process.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel

from services import badge_registry as registry
from services.api.deps import Admin, DbSession, State
from services.api.schemas import ErrorBody
from services.badges import badge_png, badge_svg
from services.errors import NotFound
from services.storage import audit
from services.storage.models import Agent

admin = APIRouter(prefix="/v1/admin", tags=["back office: agent registry"])
public = APIRouter(prefix="/public", tags=["public: agents and badges"])
verify = APIRouter(tags=["public: agents and badges"])

ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (404, 409, 422)}
# A badge token is at most 360 characters; a pasted QR URL a little more. Anything far
# longer is refused before it is parsed.
MAX_TOKEN_PARAM: Final = 2048
MAX_AGENT_NUMBER: Final = 100
HTML_HEADERS: Final = {
    # The pages load nothing: inline style only, images from this origin.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

VERDICTS: Final[dict[str, dict[str, str]]] = {
    "genuine": {"zh": "真实有效", "en": "Genuine badge", "tone": "ok"},
    "revoked": {"zh": "已吊销", "en": "Revoked", "tone": "bad"},
    "forged": {"zh": "伪造徽章", "en": "Forged badge", "tone": "bad"},
    "expired": {"zh": "已过期", "en": "Expired", "tone": "bad"},
    "mismatch": {"zh": "与本店不符", "en": "Not this shop's badge", "tone": "bad"},
    "malformed": {"zh": "无法识别", "en": "Not a valid badge", "tone": "bad"},
}
CHANNEL_NAMES: Final = {"online": "线上 online", "door_to_door": "上门 door to door"}
STATUS_NAMES: Final = {
    "active": "有效 active",
    "suspended": "已暂停 suspended",
    "revoked": "已吊销 revoked",
}


def wants_html(request: Request) -> bool:
    """Whether the client prefers a page: ``?format=html|json``, else the Accept
    header (a browser asks for text/html first; httpx and curl send ``*/*``)."""
    fmt = request.query_params.get("format")
    if fmt in ("html", "json"):
        return fmt == "html"
    weights: dict[str, float] = {}
    for part in request.headers.get("accept", "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights[media.lower()] = max(q, weights.get(media.lower(), 0.0))
    html = weights.get("text/html", 0.0)
    return html > 0 and html >= weights.get("application/json", 0.0)


def render(name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    page = _templates.get_template(name).render(**context)
    return HTMLResponse(page, status_code=status_code, headers=HTML_HEADERS)


def _error(request: Request, status: int, code: str, detail: str, zh: str) -> Response:
    if wants_html(request):
        context = {"status": status, "code": code, "detail": detail, "zh": zh}
        return render("error.html", context, status)
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


# --- admin ---------------------------------------------------------------------------


class BadgeIssued(BaseModel):
    serial: str
    agent_number: str
    token: str
    qr_text: str
    issued: dt.date
    expires: dt.date
    png_url: str
    svg_url: str


@admin.post(
    "/agents/{agent_id}/badge", status_code=201, response_model=BadgeIssued, responses=ERRORS
)
def issue_badge(agent_id: str, user: Admin, state: State) -> BadgeIssued:
    """Issue the agent a new badge from its registry record; its earlier badges are
    revoked. Refused (409 ``agent.not_active``) for a suspended or revoked agent."""
    settings = state.settings
    with state.sessions() as session, session.begin():
        agent = session.get(Agent, agent_id)
        if agent is None:
            raise NotFound(f"no agent {agent_id}", code="agent.not_found")
        badge = registry.issue_badge(session, settings, agent)
        assert agent.agent_number is not None  # issue_badge refuses an agent without one
        audit.append(
            session,
            kind="badge.issued",
            subject=agent.id,
            actor=user.id,
            payload={
                "serial": badge.serial,
                "agent_number": agent.agent_number,
                "issued": badge.issued.isoformat(),
                "expires": badge.expires.isoformat(),
            },
        )
        links = registry.badge_links(settings, agent.agent_number)
        return BadgeIssued(
            serial=badge.serial,
            agent_number=agent.agent_number,
            token=badge.token,
            qr_text=registry.qr_text(settings, badge.token),
            issued=badge.issued,
            expires=badge.expires,
            **links,
        )


# --- public --------------------------------------------------------------------------


@public.get("/agents", summary="The published list of licensed agents (JSON)")
def list_agents(session: DbSession, state: State) -> JSONResponse:
    """Active agents with a current badge: identifiers, scope, badge serial and
    validity, badge image URLs."""
    settings = state.settings
    day = registry.today(settings)
    body = {
        "carrier": settings.carrier,
        "date": day.isoformat(),
        "agents": registry.public_agents(session, settings, on=day),
        "public_key_url": f"{settings.public_url.rstrip('/')}/public/badge-key.pem",
        "revoked_url": f"{settings.public_url.rstrip('/')}/public/badges/revoked",
    }
    return JSONResponse(body, headers={"Cache-Control": "no-cache"})


@public.get("/agents/page", response_class=HTMLResponse, summary="The agent list as a page")
def agents_page(session: DbSession, state: State) -> HTMLResponse:
    settings = state.settings
    day = registry.today(settings)
    agents = registry.public_agents(session, settings, on=day)
    context = {
        "agents": agents,
        "carrier": settings.carrier,
        "date": day.isoformat(),
        "channels": CHANNEL_NAMES,
    }
    return render("agents.html", context)


def _current_token(session: DbSession, state: State, agent_number: str) -> str:
    agent = registry.agent_by_number(session, agent_number)
    day = registry.today(state.settings)
    badge = None
    if agent is not None and agent.status == "active":
        badge = registry.current_badge(session, agent.id, on=day)
    if badge is None:
        raise NotFound(f"no current badge for agent {agent_number}", code="badge.not_found")
    return registry.qr_text(state.settings, badge.token)


@public.get(
    "/agents/{agent_number}/badge.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: {"model": ErrorBody}},
)
def badge_image_png(agent_number: str, session: DbSession, state: State) -> Response:
    """The agent's current badge as a QR code (PNG)."""
    text = _current_token(session, state, agent_number)
    return Response(badge_png(text), media_type="image/png", headers={"Cache-Control": "no-cache"})


@public.get(
    "/agents/{agent_number}/badge.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}, 404: {"model": ErrorBody}},
)
def badge_image_svg(agent_number: str, session: DbSession, state: State) -> Response:
    """The agent's current badge as a QR code (SVG, for print)."""
    text = _current_token(session, state, agent_number)
    return Response(
        badge_svg(text), media_type="image/svg+xml", headers={"Cache-Control": "no-cache"}
    )


@public.get(
    "/badge-key.pem",
    response_class=Response,
    responses={200: {"content": {"application/x-pem-file": {}}}},
)
def badge_key(state: State) -> Response:
    """The carrier's Ed25519 badge public key (PEM), for offline verifiers."""
    return Response(registry.public_key_pem(state.settings), media_type="application/x-pem-file")


@public.get("/badges/revoked", summary="Revoked badge serials, for offline verifiers")
def revoked(session: DbSession, state: State) -> JSONResponse:
    body = {
        "carrier": state.settings.carrier,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "serials": registry.revoked_serials(session),
    }
    return JSONResponse(body, headers={"Cache-Control": "no-cache"})


# --- the badge check -----------------------------------------------------------------


@verify.get(
    "/verify/agent",
    summary="Check an agent badge (JSON, or a page for a browser)",
    responses={200: {"content": {"text/html": {}}}, 422: {"model": ErrorBody}},
)
def verify_agent(
    request: Request,
    session: DbSession,
    state: State,
    token: Annotated[str | None, Query(description="the badge token (or the QR's URL)")] = None,
    agent_number: Annotated[
        str | None, Query(description="the agent number of the shop showing the badge")
    ] = None,
) -> Response:
    """``genuine``, ``revoked``, ``forged``, ``expired``, ``mismatch`` (the badge of
    another agent than ``agent_number``) or ``malformed``, with the badge's agent as
    the registry knows it now (``null`` when the signature did not verify)."""
    if not token:
        return _error(
            request, 422, "badge.token_missing", "send ?token=<badge token>", "缺少徽章内容"
        )
    if len(token) > MAX_TOKEN_PARAM:
        return _error(
            request,
            422,
            "badge.token_too_long",
            f"a badge token is at most {MAX_TOKEN_PARAM} characters",
            "徽章内容过长",
        )
    if agent_number is not None and not 0 < len(agent_number) <= MAX_AGENT_NUMBER:
        return _error(
            request,
            422,
            "badge.bad_agent_number",
            f"agent_number: 1 to {MAX_AGENT_NUMBER} characters",
            "代理商编号无效",
        )
    settings = state.settings
    day = registry.today(settings)
    result = registry.verify_online(session, settings, token, agent_number=agent_number, today=day)
    if wants_html(request):
        context = {
            "result": result,
            "verdict": VERDICTS[result.status],
            "carrier": settings.carrier,
            "date": day.isoformat(),
            "agent_number": agent_number,
            "channels": CHANNEL_NAMES,
            "statuses": STATUS_NAMES,
        }
        response: Response = render("verify.html", context)
    else:
        response = JSONResponse(result.to_dict())
    response.headers["Cache-Control"] = "no-store"
    return response
