"""Shared dependencies: settings, sessions, the blob store, the calling agent."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from celery import Celery
from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session, sessionmaker

from services.agents import authenticate
from services.config import Settings
from services.couriers import authenticate_courier
from services.errors import Forbidden, Unauthorized
from services.storage.blobs import BlobStore
from services.storage.models import Agent, Courier


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
        agent = authenticate(session, authorization.removeprefix("Bearer ").strip())
    if agent is None:
        raise Unauthorized("unknown API key", code="auth.invalid_key")
    if agent.status != "active":
        raise Forbidden(f"agent {agent.id} is {agent.status}", code="agent.revoked")
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


State = Annotated[AppState, Depends(get_state)]
CurrentCourier = Annotated[Courier, Depends(get_courier)]
Logistics = Depends(require_logistics)
DbSession = Annotated[Session, Depends(get_session)]
CurrentAgent = Annotated[Agent, Depends(get_agent)]
