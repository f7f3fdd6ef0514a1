"""FastAPI dependencies: the database session, the caller's key, the app's services."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session, sessionmaker

from app.auth import Principal, authenticate
from app.metrics import Metrics
from app.scheduler import Scheduler
from app.scorer import ScoringContext
from app.settings import Settings


@dataclass
class Services:
    settings: Settings
    sessions: sessionmaker[Session]
    metrics: Metrics
    scoring: ScoringContext
    scheduler: Scheduler


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def db_session(svc: Annotated[Services, Depends(services)]) -> Iterator[Session]:
    with svc.sessions() as session:
        yield session


DB = Annotated[Session, Depends(db_session)]
Svc = Annotated[Services, Depends(services)]


def require(role: str) -> Callable[..., Principal]:
    def check(session: DB, authorization: Annotated[str | None, Header()] = None) -> Principal:
        return authenticate(session, authorization, role)

    return check


Viewer = Annotated[Principal, Depends(require("viewer"))]
Gateway = Annotated[Principal, Depends(require("gateway"))]
Operator = Annotated[Principal, Depends(require("operator"))]
