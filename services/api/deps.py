"""Shared dependencies: settings, sessions, the blob store, the calling agent."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from celery import Celery
from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session, sessionmaker

from services.agents import find_key
from services.config import Settings
from services.couriers import authenticate_courier
from services.errors import Forbidden, Unauthorized
from services.staff import authenticate_staff
from services.storage import audit
from services.storage.blobs import BlobStore
from services.storage.models import Agent, Courier, StaffUser


@dataclass
class AppState:
    settings: Settings
    sessions: sessionmaker[Session]
    blobs: BlobStore
    celery: Celery  # built from these settings: the broker is the app's, not the env's


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.simgate
    return state


def get_session(state: Annotated[AppState, Depends(get_state)]) -> Iterator[Session]:
    with state.sessions() as session:
        yield session


def get_agent(
    state: Annotated[AppState, Depends(get_state)],
    authorization: Annotated[str | None, Header()] = None,
) -> Agent:
    if not authorization or not authorization.startswith("Bearer "):
        raise Unauthorized("send 'Authorization: Bearer <API key>'", code="auth.missing_key")
    with state.sessions() as session:
        found = find_key(session, authorization.removeprefix("Bearer ").strip())
    if found is None:
        raise Unauthorized("unknown API key", code="auth.invalid_key")
    agent, key = found
    # The agent's status first: a revoked agent's keys say "revoked", not "unknown".
    if agent.status != "active":
        raise Forbidden(f"agent {agent.id} is {agent.status}", code=f"agent.{agent.status}")
    if key.revoked_at is not None:
        raise Unauthorized("this API key has been rotated out", code="auth.key_revoked")
    return agent


def _bearer(authorization: str | None) -> str:
    if not authorization or not authorization.startswith("Bearer "):
        raise Unauthorized("send 'Authorization: Bearer <token>'", code="auth.missing_key")
    return authorization.removeprefix("Bearer ").strip()


def get_courier(
    state: Annotated[AppState, Depends(get_state)],
    authorization: Annotated[str | None, Header()] = None,
) -> Courier:
    token = _bearer(authorization)
    with state.sessions() as session:
        courier = authenticate_courier(session, token)
    if courier is None:
        raise Unauthorized("unknown courier token", code="auth.invalid_key")
    if courier.status != "active":
        raise Forbidden(f"courier {courier.id} is {courier.status}", code="courier.inactive")
    return courier


def require_logistics(
    state: Annotated[AppState, Depends(get_state)],
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """The carrier's logistics system (one shared secret, SIMGATE_LOGISTICS_TOKEN)."""
    token = _bearer(authorization)
    if not hmac.compare_digest(token, state.settings.logistics_token):
        raise Unauthorized("unknown logistics token", code="auth.invalid_key")


def admit_staff(request: Request, state: AppState, token: str, role: str | None) -> StaffUser:
    """The active back-office user holding ``token``, if of ``role`` (``None``: any
    role); the request is written to the audit log (who, what, when) before the handler
    runs (R10). Shared by the API's bearer tokens and the back-office pages' sessions."""
    with state.sessions() as session:
        user = authenticate_staff(session, token)
    if user is None:
        raise Unauthorized("unknown back-office token", code="auth.invalid_key")
    if user.status != "active":
        raise Forbidden(f"{user.id} is {user.status}", code="staff.inactive")
    allowed = role is None or user.role == role
    # Refused attempts are recorded too: a staff member probing another role's pages.
    audit.append_now(
        state.sessions,
        kind=f"access.{user.role}" if allowed else "access.denied",
        subject=user.id,
        actor=user.id,
        payload={
            "method": request.method,
            "path": request.url.path,
            "query": dict(request.query_params),
            **({} if allowed else {"role": user.role, "needs": role}),
        },
    )
    if not allowed:
        raise Forbidden(f"this needs the {role} role", code="auth.wrong_role")
    return user


def _staff(role: str) -> Any:
    """A dependency admitting back-office users of ``role`` (:func:`admit_staff`)."""

    def dependency(
        request: Request,
        state: Annotated[AppState, Depends(get_state)],
        authorization: Annotated[str | None, Header()] = None,
    ) -> StaffUser:
        return admit_staff(request, state, _bearer(authorization), role)

    return dependency


State = Annotated[AppState, Depends(get_state)]
CurrentCourier = Annotated[Courier, Depends(get_courier)]
Logistics = Depends(require_logistics)
DbSession = Annotated[Session, Depends(get_session)]
CurrentAgent = Annotated[Agent, Depends(get_agent)]
Admin = Annotated[StaffUser, Depends(_staff("admin"))]
Auditor = Annotated[StaffUser, Depends(_staff("auditor"))]
