"""The back office in the browser (issue 7): server-rendered pages over the same code as
the back-office JSON API, for the carrier's ``admin`` (review queue, agent registry,
inspection, risk ranking) and the regulator's ``auditor`` (decisions search, chain
check, evidence package).

Login: ``GET /backoffice/login`` asks for the staff token; ``POST /backoffice/login``
checks it (services.staff) and sets the session cookie ``simgate_bo``: the token and a
CSRF secret sealed with AES-GCM (the blob key, its own associated data) with an 8-hour
expiry; ``HttpOnly``, ``SameSite=Strict``, ``Path=/backoffice``, ``Secure`` over HTTPS.
Every page re-checks the token (a disabled user is out at the next click) and writes the
same ``access.<role>`` audit entry as the API (deps.admit_staff). No session: a
redirect to the login page; another role's page: 403. Each POST form carries the
session's CSRF secret; the login form a double-submit cookie.

Identity data: list views and the review page show masked ID numbers only; the
decrypted images are served to admins (reviewers) with ``Cache-Control: no-store``;
only the auditor's evidence package holds the full reading.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import quote, urlencode

from cryptography.exceptions import InvalidTag
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from pydantic import ValidationError
from sqlalchemy import select

from services import badge_registry as registry
from services.api import admin as admin_api
from services.api import auditor as auditor_api
from services.api import page_text
from services.api import public as public_api
from services.api.deps import AppState, State, admit_staff
from services.api.review import (
    RecheckRequest,
    ReviewDecision,
    decide,
    image_response,
    order_review,
    queue,
    recheck,
)
from services.domain.states import Outcome
from services.errors import Forbidden, ServiceError, Unauthorized
from services.inspection import PeriodError, agent_report, chart_svg, report_csv, resolve_period
from services.risk import Thresholds, rank_agents
from services.staff import authenticate_staff
from services.storage import audit
from services.storage.blobs import open_text, seal_text
from services.storage.models import Agent, StaffUser

router = APIRouter(prefix="/backoffice", tags=["back office pages"], include_in_schema=False)

COOKIE: Final = "simgate_bo"
LOGIN_COOKIE: Final = "simgate_bo_login"
COOKIE_PATH: Final = "/backoffice"
SESSION_S: Final = 8 * 3600
SEAL_CONTEXT: Final = "simgate/backoffice-session/v1"
HOME: Final = {"admin": "/backoffice/review", "auditor": "/backoffice/audit"}
HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
NAV: Final = {
    "admin": [
        ("review", "/backoffice/review", "审核队列", "Review queue"),
        ("agents", "/backoffice/agents", "代理商", "Agents"),
        ("risk", "/backoffice/risk", "风险排名", "Risk ranking"),
        ("badge", "/backoffice/badge", "徽章核验", "Badge check"),
    ],
    "auditor": [
        ("audit", "/backoffice/audit", "决定查询", "Decisions"),
        ("badge", "/backoffice/badge", "徽章核验", "Badge check"),
    ],
}
ROLE_NAMES: Final = {"admin": "管理员 admin", "auditor": "审计员 auditor"}
# Plain words for what a back-office action can answer (the reason codes of orders come
# from page_text: common, then the storefront's table).
MESSAGES: Final[dict[str, dict[str, str]]] = {
    "review.not_pending": {
        "zh": "该订单不在待审核状态",
        "en": "This order is not waiting for review.",
    },
    "review.already_reviewed": {"zh": "该订单已被审核", "en": "This order was reviewed already."},
    "review.reason_required": {"zh": "请填写理由", "en": "Give a reason."},
    "review.card_limit": {
        "zh": "该证件名下号卡已达上限（R2），不能批准，需到营业厅办理",
        "en": "This ID holds the maximum number of cards (R2): it cannot be approved online.",
    },
    "review.ship_mode_not_allowed": {
        "zh": "该订单只能不激活寄出",
        "en": "This order can only ship inactive.",
    },
    "review.lookup_required": {
        "zh": "公民身份信息核查未确认该身份（R5），不能人工批准；请重新核查或拒绝",
        "en": "The national ID lookup did not confirm this identity (R5): it cannot be "
        "approved by a person. Re-run the checks or reject it.",
    },
    "review.too_many_rechecks": {
        "zh": "该订单重新核查次数已达上限，请批准或拒绝",
        "en": "This order was sent back to the checks too often; approve or reject it.",
    },
    "review.no_reading": {
        "zh": "该订单没有保存的识别结果，无法重新核查",
        "en": "This order has no stored reading of its images to check again.",
    },
    "order.msisdn_unavailable": {
        "zh": "该号码已被其他订单占用，不能批准",
        "en": "The number was taken by another order meanwhile; it cannot be approved.",
    },
    "order.not_found": {"zh": "找不到这个订单", "en": "No such order."},
    "agent.not_found": {"zh": "找不到这个代理商", "en": "No such agent."},
    "agent.exists": {"zh": "代理商编号已存在", "en": "This agent number is registered already."},
    "agent.active": {"zh": "代理商当前为有效状态", "en": "The agent is active."},
    "agent.suspended": {"zh": "代理商已暂停", "en": "The agent is suspended."},
    "agent.revoked": {"zh": "代理商已吊销", "en": "The agent is revoked."},
    "agent.not_active": {"zh": "代理商不是有效状态", "en": "The agent is not active."},
    "badge.no_agent_number": {"zh": "代理商没有编号", "en": "The agent has no agent number."},
    "inspection.bad_period": {"zh": "日期范围无效", "en": "The period is not valid."},
    "audit.bad_time": {"zh": "日期格式无效", "en": "A date is not valid."},
    "audit.bad_range": {"zh": "开始日期晚于结束日期", "en": "The start is after the end."},
    "review.bad_cursor": {"zh": "分页参数无效", "en": "The page cursor is not valid."},
    "request.invalid": {"zh": "表单内容有误", "en": "The form has errors."},
    "auth.wrong_role": {
        "zh": "您的角色无权访问此页面",
        "en": "Your role may not open this page.",
    },
    "csrf.invalid": {
        "zh": "表单已过期，请刷新页面后重试",
        "en": "The form expired; reload the page and try again.",
    },
    "image.not_found": {"zh": "没有这张图片", "en": "No such image."},
}
DONE: Final = {
    "approve": ("已批准", "Approved"),
    "reject": ("已拒绝", "Rejected"),
    "recheck": ("已重新提交核查", "Sent back to the checks"),
    "suspend": ("已暂停", "Suspended"),
    "reinstate": ("已恢复", "Reinstated"),
    "revoke": ("已吊销", "Revoked"),
    "badge": ("已签发徽章", "Badge issued"),
}
IMAGE_NAMES: Final = {
    "id_front": ("身份证人像面", "ID card, portrait side"),
    "id_back": ("身份证国徽面", "ID card, emblem side"),
    "selfie": ("手持身份证自拍", "Selfie holding the card"),
}
AGENT_STATUSES: Final = {
    "active": "有效 active",
    "suspended": "已暂停 suspended",
    "revoked": "已吊销 revoked",
}
PROVINCES: Final = {"11": "北京", "31": "上海", "44": "广东", "51": "四川"}
PAGE_URL: Final = "/backoffice/review/{order_id}/images/{role}"
LOOKUP_LABELS: Final = {
    "error": "错误 error",
    "waited_s": "等待秒数 waited (s)",
    "request_id": "请求编号 request id",
    "attempts": "尝试次数 attempts",
}

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def _pct(value: Any) -> str:
    return "—" if value is None else f"{100 * float(value):.1f}%"


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "是 yes" if value else "否 no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


_env.filters.update(when=_when, pct=_pct, num=_num, tojson_text=_json)
REASON_TEXT: Final = {**page_text.COMMON, **page_text.ORDER}


def _words(code: str) -> dict[str, str]:
    return MESSAGES.get(code) or REASON_TEXT.get(code) or {"zh": code, "en": code}


_env.globals.update(
    words=_words,
    outcomes=page_text.OUTCOMES,
    ship_modes=page_text.SHIP_MODES,
    statuses=page_text.ORDER_STATUSES,
    agent_statuses=AGENT_STATUSES,
    image_names=IMAGE_NAMES,
    provinces=PROVINCES,
    role_names=ROLE_NAMES,
    lookup_labels=LOOKUP_LABELS,
)


# --- sessions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Staff:
    """Who is signed in on this request, and the session's CSRF secret."""

    user: StaffUser
    csrf: str


def _b64(text: str) -> str:
    return text.replace("+", "-").replace("/", "_").rstrip("=")


def _unb64(text: str) -> str:
    return text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4)


def seal_session(state: AppState, token: str, csrf: str, expires: int) -> str:
    payload = json.dumps({"t": token, "c": csrf, "e": expires})
    return _b64(seal_text(state.settings.blob_key_bytes, payload, SEAL_CONTEXT))


def open_session(state: AppState, value: str | None) -> dict[str, Any] | None:
    """The session's fields, or None: absent, tampered, sealed with another key, expired."""
    if not value or len(value) > 4096:
        return None
    try:
        data = json.loads(open_text(state.settings.blob_key_bytes, _unb64(value), SEAL_CONTEXT))
    except (InvalidTag, ValueError, TypeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("e"), int):
        return None
    if data["e"] <= int(dt.datetime.now(dt.UTC).timestamp()):
        return None
    if not isinstance(data.get("t"), str) or not isinstance(data.get("c"), str):
        return None
    return data


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def _clear(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(
        name, path=COOKIE_PATH, httponly=True, samesite="strict", secure=_secure(request)
    )


def _safe_next(value: str | None) -> str | None:
    """Only a back-office path of this site (no open redirect)."""
    if value and value.startswith("/backoffice/") and "//" not in value and "\\" not in value:
        return value
    return None


def _to_login(request: Request, *, clear: bool) -> Response:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    nxt = _safe_next(target) if request.method == "GET" else None
    url = "/backoffice/login" + (f"?{urlencode({'next': nxt})}" if nxt else "")
    response = RedirectResponse(url, status_code=303)
    if clear:
        _clear(response, request, COOKIE)
    return response


def gate(request: Request, state: AppState, role: str | None) -> Staff | Response:
    """The signed-in user of ``role`` (None: any), audited like the API; otherwise the
    response to send: the login page (no or expired session) or a 403 page."""
    data = open_session(state, request.cookies.get(COOKIE))
    if data is None:
        return _to_login(request, clear=COOKIE in request.cookies)
    try:
        user = admit_staff(request, state, data["t"], role)
    except Unauthorized:
        return _to_login(request, clear=True)
    except Forbidden as exc:
        if exc.code == "staff.inactive":
            return _to_login(request, clear=True)
        with state.sessions() as session:
            who = authenticate_staff(session, data["t"])
        staff = Staff(who, data["c"]) if who is not None else None
        return _error_page(staff, 403, exc.code, str(exc.detail))
    return Staff(user, data["c"])


def _csrf_ok(staff: Staff, given: str) -> bool:
    return hmac.compare_digest(staff.csrf.encode(), given.encode())


# --- rendering -------------------------------------------------------------------------


def page(
    name: str, staff: Staff | None, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    user = staff.user if staff else None
    html = _env.get_template(name).render(
        user=user,
        csrf=staff.csrf if staff else "",
        nav=NAV.get(user.role, []) if user else [],
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=dict(HEADERS))


def _error_page(staff: Staff | None, status: int, code: str, detail: str) -> HTMLResponse:
    words = _words(code)
    home = HOME.get(staff.user.role, "/backoffice/login") if staff else "/backoffice/login"
    context = {"status": status, "code": code, "detail": detail, "words": words, "home": home}
    return page("backoffice_error.html", staff, {**context, "active": ""}, status)


def _problem(exc: ServiceError) -> dict[str, Any]:
    return {"code": exc.code, "detail": str(exc.detail), **_words(exc.code)}


Guarded = Callable[[Staff], Response]


def _guarded(request: Request, state: AppState, role: str | None, body: Guarded) -> Response:
    """Run ``body`` for a signed-in user of ``role``; a ServiceError it raises becomes an
    error page with the same status."""
    who = gate(request, state, role)
    if not isinstance(who, Staff):
        return who
    try:
        return body(who)
    except ServiceError as exc:
        return _error_page(who, exc.status, exc.code, str(exc.detail))


def _csrf_refused(staff: Staff) -> HTMLResponse:
    return _error_page(staff, 403, "csrf.invalid", "the form's CSRF token does not match")


# --- login -----------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
def home(request: Request, state: State) -> Response:
    who = gate(request, state, None)
    if not isinstance(who, Staff):
        return who
    return RedirectResponse(HOME[who.user.role], status_code=303)


def _login_form(
    request: Request, nxt: str | None, problem: dict[str, Any] | None, status_code: int = 200
) -> Response:
    csrf = secrets.token_urlsafe(24)
    response = page(
        "backoffice_login.html",
        None,
        {"login_csrf": csrf, "next": _safe_next(nxt) or "", "problem": problem, "active": ""},
        status_code,
    )
    _set_cookie(response, request, LOGIN_COOKIE, csrf, 3600)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(
    request: Request,
    state: State,
    nxt: Annotated[str | None, Query(alias="next", max_length=500)] = None,
) -> Response:
    data = open_session(state, request.cookies.get(COOKIE))
    if data is not None:
        with state.sessions() as session:
            user = authenticate_staff(session, data["t"])
        if user is not None and user.status == "active":
            return RedirectResponse(_safe_next(nxt) or HOME[user.role], status_code=303)
    return _login_form(request, nxt, None)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    state: State,
    token: Annotated[str, Form(max_length=500)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    nxt: Annotated[str, Form(alias="next", max_length=500)] = "",
) -> Response:
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), csrf.encode()):
        problem = {"code": "csrf.invalid", "detail": "", **_words("csrf.invalid")}
        return _login_form(request, nxt, problem, 403)
    token = token.strip()
    with state.sessions() as session:
        user = authenticate_staff(session, token) if token else None
    if user is None or user.status != "active":
        audit.append_now(
            state.sessions,
            kind="staff.login_failed",
            subject="backoffice",
            actor="anonymous",
            payload={"reason": "inactive" if user is not None else "unknown token"},
        )
        problem = {
            "code": "auth.invalid_key",
            "detail": "",
            "zh": "令牌无效或已停用",
            "en": "Unknown or disabled token.",
        }
        return _login_form(request, nxt, problem, 401)
    audit.append_now(
        state.sessions,
        kind="staff.login",
        subject=user.id,
        actor=user.id,
        payload={"role": user.role, "session_hours": SESSION_S // 3600},
    )
    expires = int(dt.datetime.now(dt.UTC).timestamp()) + SESSION_S
    response = RedirectResponse(_safe_next(nxt) or HOME[user.role], status_code=303)
    sealed = seal_session(state, token, secrets.token_urlsafe(24), expires)
    _set_cookie(response, request, COOKIE, sealed, SESSION_S)
    _clear(response, request, LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(
    request: Request, state: State, csrf: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    def body(staff: Staff) -> Response:
        if not _csrf_ok(staff, csrf):
            return _csrf_refused(staff)
        audit.append_now(
            state.sessions,
            kind="staff.logout",
            subject=staff.user.id,
            actor=staff.user.id,
            payload={},
        )
        response = RedirectResponse("/backoffice/login", status_code=303)
        _clear(response, request, COOKIE)
        return response

    return _guarded(request, state, None, body)


# --- review (admin) -------------------------------------------------------------------


@router.get("/review", response_class=HTMLResponse)
def review_queue(
    request: Request,
    state: State,
    outcome: Annotated[str | None, Query(max_length=40)] = None,
    before: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    filters = (
        "needs_review",
        "approved",
        "rejected",
        "store_visit_required",
        "reviewed",
        "undecided",
    )
    chosen = outcome if outcome in filters else None

    def body(staff: Staff) -> Response:
        with state.sessions() as session:
            found = queue(session, outcome=chosen, limit=50, before=before)
        waiting = sum(1 for o in found.orders if o.reviewable)
        nxt = None
        if found.next_before:
            params = {"before": found.next_before, **({"outcome": chosen} if chosen else {})}
            nxt = "/backoffice/review?" + urlencode(params)
        return page(
            "backoffice_review_list.html",
            staff,
            {
                "active": "review",
                "orders": found.orders,
                "waiting": waiting,
                "outcome": chosen or "",
                "filters": filters,
                "next_url": nxt,
            },
        )

    return _guarded(request, state, "admin", body)


def _review_page(
    staff: Staff,
    state: AppState,
    order_id: str,
    *,
    problem: dict[str, Any] | None = None,
    recheck_problem: dict[str, Any] | None = None,
    form: dict[str, str] | None = None,
    done: str | None = None,
    status_code: int = 200,
) -> Response:
    with state.sessions() as session:
        view = order_review(session, state, order_id, PAGE_URL)
    return page(
        "backoffice_review.html",
        staff,
        {
            "active": "review",
            "o": view,
            "problem": problem,
            "recheck_problem": recheck_problem,
            "form": form or {},
            "done": DONE.get(done or ""),
            "done_kind": done if done in DONE else "",
        },
        status_code,
    )


@router.get("/review/{order_id}", response_class=HTMLResponse)
def review_order_page(
    order_id: str,
    request: Request,
    state: State,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    return _guarded(
        request, state, "admin", lambda staff: _review_page(staff, state, order_id, done=done)
    )


@router.post("/review/{order_id}/decision", response_class=HTMLResponse)
def review_decision(
    order_id: str,
    request: Request,
    state: State,
    decision: Annotated[str, Form(max_length=20)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    ship_mode: Annotated[str, Form(max_length=40)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    def body(staff: Staff) -> Response:
        if not _csrf_ok(staff, csrf):
            return _csrf_refused(staff)
        form = {"decision": decision, "reason": reason, "ship_mode": ship_mode}
        try:
            choice = ReviewDecision.model_validate(
                {
                    "decision": decision,
                    "reason": reason,
                    "ship_mode": (ship_mode or None) if decision == "approve" else None,
                }
            )
        except ValidationError:
            code = (
                "review.reason_required"
                if decision in ("approve", "reject")
                else ("request.invalid")
            )
            problem = {"code": code, "detail": "", **_words(code)}
            return _review_page(staff, state, order_id, problem=problem, form=form, status_code=422)
        try:
            decide(state, order_id, choice, staff.user.id)
        except ServiceError as exc:
            if exc.status == 404:
                raise
            return _review_page(
                staff,
                state,
                order_id,
                problem=_problem(exc),
                form=form,
                status_code=exc.status,
            )
        url = f"/backoffice/review/{quote(order_id, safe='')}?done={choice.decision}"
        return RedirectResponse(url, status_code=303)

    return _guarded(request, state, "admin", body)


@router.post("/review/{order_id}/recheck", response_class=HTMLResponse)
def review_recheck(
    order_id: str,
    request: Request,
    state: State,
    reason: Annotated[str, Form(max_length=2000)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """The review page's "re-run the checks" form (services/reviews.py recheck_order)."""

    def body(staff: Staff) -> Response:
        if not _csrf_ok(staff, csrf):
            return _csrf_refused(staff)
        form = {"recheck_reason": reason}
        try:
            choice = RecheckRequest.model_validate({"reason": reason})
        except ValidationError:
            problem = {
                "code": "review.reason_required",
                "detail": "",
                **_words("review.reason_required"),
            }
            return _review_page(
                staff, state, order_id, recheck_problem=problem, form=form, status_code=422
            )
        try:
            recheck(state, order_id, choice, staff.user.id)
        except ServiceError as exc:
            if exc.status == 404:
                raise
            return _review_page(
                staff,
                state,
                order_id,
                recheck_problem=_problem(exc),
                form=form,
                status_code=exc.status,
            )
        url = f"/backoffice/review/{quote(order_id, safe='')}?done=recheck"
        return RedirectResponse(url, status_code=303)

    return _guarded(request, state, "admin", body)


@router.get("/review/{order_id}/images/{role}")
def review_image(order_id: str, role: str, request: Request, state: State) -> Response:
    return _guarded(request, state, "admin", lambda _: image_response(state, order_id, role))


# --- agents (admin) -------------------------------------------------------------------


def _agents_page(
    staff: Staff,
    state: AppState,
    *,
    created: dict[str, Any] | None = None,
    problem: dict[str, Any] | None = None,
    form: dict[str, Any] | None = None,
    done: tuple[str, str] | None = None,
    done_agent: str | None = None,
    status_code: int = 200,
) -> Response:
    day = registry.today(state.settings)
    rows = []
    with state.sessions() as session:
        for view in admin_api.list_agents(staff.user, session, None):
            badge = registry.current_badge(session, view.id, on=day)
            check = None
            if badge is not None and view.agent_number:
                check = "/verify/agent?" + urlencode(
                    {"token": badge.token, "agent_number": view.agent_number}
                )
            rows.append({"a": view, "badge": badge, "check_url": check})
    return page(
        "backoffice_agents.html",
        staff,
        {
            "active": "agents",
            "rows": rows,
            "created": created,
            "problem": problem,
            "form": form or {},
            "done": done,
            "done_agent": done_agent,
        },
        status_code,
    )


@router.get("/agents", response_class=HTMLResponse)
def agents(
    request: Request,
    state: State,
    done: Annotated[str | None, Query(max_length=20)] = None,
    agent: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    return _guarded(
        request,
        state,
        "admin",
        lambda staff: _agents_page(staff, state, done=DONE.get(done or ""), done_agent=agent),
    )


def _split(text: str) -> list[str]:
    return [p for p in (s.strip() for s in text.replace("，", ",").split(",")) if p]


@router.post("/agents", response_class=HTMLResponse)
def create_agent(
    request: Request,
    state: State,
    csrf: Annotated[str, Form(max_length=200)] = "",
    name: Annotated[str, Form(max_length=400)] = "",
    legal_name: Annotated[str, Form(max_length=400)] = "",
    licence_number: Annotated[str, Form(max_length=100)] = "",
    agent_number: Annotated[str, Form(max_length=100)] = "",
    provinces: Annotated[list[str] | None, Form()] = None,
    channels: Annotated[list[str] | None, Form()] = None,
    products: Annotated[str, Form(max_length=400)] = "",
    contact_name: Annotated[str, Form(max_length=200)] = "",
    contact_phone: Annotated[str, Form(max_length=80)] = "",
    webhook_url: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    def body(staff: Staff) -> Response:
        if not _csrf_ok(staff, csrf):
            return _csrf_refused(staff)
        contact = {"name": contact_name.strip() or None, "phone": contact_phone.strip() or None}
        raw: dict[str, Any] = {
            "name": name.strip(),
            "legal_name": legal_name.strip(),
            "licence_number": licence_number.strip(),
            "agent_number": agent_number.strip(),
            "provinces": provinces or [],
            "products": _split(products),
            "channels": channels or ["online"],
            "contact": contact if any(contact.values()) else None,
            "webhook_url": webhook_url.strip() or None,
        }
        shown = {
            **raw,
            "products": products,
            "contact_name": contact_name,
            "contact_phone": contact_phone,
            "webhook_url": webhook_url,
        }
        try:
            body_model = admin_api.AgentCreate.model_validate(raw)
        except ValidationError as exc:
            problems = [
                {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]}
                for e in exc.errors()
            ]
            problem = {
                "code": "request.invalid",
                "detail": "",
                "fields": problems,
                **_words("request.invalid"),
            }
            return _agents_page(staff, state, problem=problem, form=shown, status_code=422)
        try:
            created = admin_api.create_agent(body_model, staff.user, state)
        except ServiceError as exc:
            return _agents_page(
                staff, state, problem=_problem(exc), form=shown, status_code=exc.status
            )
        return _agents_page(
            staff,
            state,
            created={"agent": created.agent, "api_key": created.api_key},
            status_code=201,
        )

    return _guarded(request, state, "admin", body)


ACTIONS: Final = {
    "suspend": admin_api.suspend,
    "reinstate": admin_api.reinstate,
    "revoke": admin_api.revoke,
}


@router.post("/agents/{agent_id}/{action}", response_class=HTMLResponse)
def agent_action(
    agent_id: str,
    action: str,
    request: Request,
    state: State,
    reason: Annotated[str, Form(max_length=500)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    def body(staff: Staff) -> Response:
        if not _csrf_ok(staff, csrf):
            return _csrf_refused(staff)
        try:
            if action == "badge":
                public_api.issue_badge(agent_id, staff.user, state)
            elif action in ACTIONS:
                if not reason.strip():
                    code = "review.reason_required"
                    return _agents_page(
                        staff,
                        state,
                        problem={"code": code, "detail": "", **_words(code)},
                        done_agent=agent_id,
                        status_code=422,
                    )
                ACTIONS[action](
                    agent_id, admin_api.StatusChange(reason=reason.strip()), staff.user, state
                )
            else:
                return _error_page(staff, 404, "not_found", f"no action {action}")
        except ServiceError as exc:
            if exc.status == 404:
                raise
            return _agents_page(
                staff, state, problem=_problem(exc), done_agent=agent_id, status_code=exc.status
            )
        query = urlencode({"done": action, "agent": agent_id})
        return RedirectResponse(f"/backoffice/agents?{query}#agent-{agent_id}", status_code=303)

    return _guarded(request, state, "admin", body)


# --- inspection and risk (admin) ---------------------------------------------------


def _period(start: str | None, end: str | None) -> tuple[dt.date, dt.date]:
    try:
        return resolve_period(start or None, end or None)
    except PeriodError as exc:
        raise ServiceError(str(exc), code="inspection.bad_period", status=422) from None


def _report(state: AppState, agent_id: str, first: dt.date, last: dt.date) -> dict[str, Any]:
    with state.sessions() as session:
        try:
            return agent_report(session, agent_id, first, last)
        except KeyError:
            raise ServiceError(f"no agent {agent_id}", code="agent.not_found", status=404) from None


FromDay = Annotated[str | None, Query(alias="from", max_length=10)]
ToDay = Annotated[str | None, Query(alias="to", max_length=10)]


@router.get("/agents/{agent_id}/inspection", response_class=HTMLResponse)
def inspection(
    agent_id: str, request: Request, state: State, start: FromDay = None, end: ToDay = None
) -> Response:
    def body(staff: Staff) -> Response:
        first, last = _period(start, end)
        report = _report(state, agent_id, first, last)
        period = urlencode({"from": first.isoformat(), "to": last.isoformat()})
        svg = chart_svg(report)
        return page(
            "backoffice_inspection.html",
            staff,
            {
                "active": "agents",
                "r": report,
                # Built by services.inspection, every text in it escaped there.
                "chart": Markup(svg),
                "period_query": period,
                "first": first.isoformat(),
                "last": last.isoformat(),
            },
        )

    return _guarded(request, state, "admin", body)


@router.get("/agents/{agent_id}/chart.svg")
def inspection_chart(
    agent_id: str, request: Request, state: State, start: FromDay = None, end: ToDay = None
) -> Response:
    def body(_: Staff) -> Response:
        first, last = _period(start, end)
        svg = chart_svg(_report(state, agent_id, first, last))
        return Response(
            svg,
            media_type="image/svg+xml",
            headers={
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            },
        )

    return _guarded(request, state, "admin", body)


@router.get("/agents/{agent_id}/inspection.csv")
def inspection_csv(
    agent_id: str, request: Request, state: State, start: FromDay = None, end: ToDay = None
) -> Response:
    def body(_: Staff) -> Response:
        first, last = _period(start, end)
        report = _report(state, agent_id, first, last)
        name = f"inspection_{agent_id}_{first}_{last}.csv"
        return Response(
            report_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "no-store",
            },
        )

    return _guarded(request, state, "admin", body)


@router.get("/risk", response_class=HTMLResponse)
def risk(request: Request, state: State, start: FromDay = None, end: ToDay = None) -> Response:
    def body(staff: Staff) -> Response:
        first, last = _period(start, end)
        with state.sessions() as session:
            ranking = rank_agents(session, first, last, thresholds=Thresholds())
        return page(
            "backoffice_risk.html",
            staff,
            {
                "active": "risk",
                "ranking": [r.to_dict() for r in ranking],
                "first": first.isoformat(),
                "last": last.isoformat(),
                "period_query": urlencode({"from": first.isoformat(), "to": last.isoformat()}),
            },
        )

    return _guarded(request, state, "admin", body)


# --- badge check (any role) ---------------------------------------------------------


@router.get("/badge", response_class=HTMLResponse)
def badge(request: Request, state: State) -> Response:
    return _guarded(
        request,
        state,
        None,
        lambda staff: page("backoffice_badge.html", staff, {"active": "badge"}),
    )


# --- the regulator (auditor) ----------------------------------------------------------


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    state: State,
    start: FromDay = None,
    end: ToDay = None,
    agent_id: Annotated[str | None, Query(max_length=40)] = None,
    outcome: Annotated[str | None, Query(max_length=40)] = None,
    before: Annotated[str | None, Query(max_length=60)] = None,
    verify: Annotated[bool, Query(description="recompute the whole audit chain")] = False,
) -> Response:
    chosen = Outcome(outcome) if outcome in {o.value for o in Outcome} else None

    def body(staff: Staff) -> Response:
        problem = None
        found = None
        with state.sessions() as session:
            agents_list = list(session.scalars(select(Agent).order_by(Agent.name)))
            try:
                found = auditor_api.decisions(
                    staff.user,
                    session,
                    start or None,
                    end or None,
                    agent_id or None,
                    chosen,
                    100,
                    before or None,
                )
            except ServiceError as exc:
                problem = _problem(exc)
            # Recomputing every link grows with the log: only when the auditor asks for
            # it, not on each search; the head is one indexed row.
            chain = auditor_api.verify(staff.user, session) if verify else None
            head = auditor_api.audit_head(session)
        nxt = None
        if found is not None and found.next_before:
            params = {
                k: v
                for k, v in {
                    "from": start,
                    "to": end,
                    "agent_id": agent_id,
                    "outcome": outcome,
                    "before": found.next_before,
                }.items()
                if v
            }
            nxt = "/backoffice/audit?" + urlencode(params)
        return page(
            "backoffice_audit.html",
            staff,
            {
                "active": "audit",
                "decisions": found.decisions if found else [],
                "problem": problem,
                "chain": chain,
                "head": head,
                "agents": agents_list,
                "q": {
                    "from": start or "",
                    "to": end or "",
                    "agent_id": agent_id or "",
                    "outcome": chosen.value if chosen else "",
                },
                "next_url": nxt,
            },
            422 if problem else 200,
        )

    return _guarded(request, state, "auditor", body)


@router.get("/audit/orders/{order_id}/evidence.zip")
def evidence_zip(order_id: str, request: Request, state: State) -> Response:
    """The same package as ``GET /v1/audit/orders/{id}/evidence.zip`` (its builder)."""
    return _guarded(
        request,
        state,
        "auditor",
        lambda staff: auditor_api.evidence_zip(order_id, staff.user, state),
    )
