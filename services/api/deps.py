"""Shared dependencies: settings, sessions, the blob store, the calling agent."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from celery import Celery
from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session, sessionmaker

from services.agents import authenticate
from services.config import Settings
from services.errors import Forbidden, Unauthorized
from services.storage.blobs import BlobStore
from services.storage.models import Agent


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


State = Annotated[AppState, Depends(get_state)]
DbSession = Annotated[Session, Depends(get_session)]
CurrentAgent = Annotated[Agent, Depends(get_agent)]
