"""FastAPI dependencies: the database session, the caller's key, the app's services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from app.auth import Principal, authenticate, authenticate_cached
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


# FastAPI runs a plain `def` dependency in the threadpool. Each such hop cost a one-window
# request about 0.2 ms of waiting (bench/README.md), so what needs no I/O is `async`.


async def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


async def db_session(svc: Annotated[Services, Depends(services)]) -> AsyncIterator[Session]:
    """Opening a session does no I/O; closing it returns its connection (a rollback), which
    runs in the threadpool."""
    session = svc.sessions()
    try:
        yield session
    finally:
        await run_in_threadpool(session.close)


DB = Annotated[Session, Depends(db_session)]
Svc = Annotated[Services, Depends(services)]


def require(role: str) -> Callable[..., Awaitable[Principal]]:
    async def check(session: DB, authorization: Annotated[str | None, Header()] = None
                    ) -> Principal:
        who = authenticate_cached(authorization, role)  # a recently seen key: no query
        if who is None:
            who = await run_in_threadpool(authenticate, session, authorization, role)
        return who

    return check


Viewer = Annotated[Principal, Depends(require("viewer"))]
Gateway = Annotated[Principal, Depends(require("gateway"))]
Operator = Annotated[Principal, Depends(require("operator"))]
