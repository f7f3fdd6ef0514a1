"""One error shape for every failure: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.db import DB_DOWN
from app.logs import EveryFewSeconds

log = logging.getLogger(__name__)
RETRY_AFTER_S = 5


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


class DatabaseDown(Exception):
    """A scoring call the database did not answer; `provisional` is the batch's answer scored
    without it (app/scorer.py), or None where this process could not score it."""

    def __init__(self, provisional: dict[str, Any] | None) -> None:
        super().__init__("the database did not answer")
        self.provisional = provisional


# While the database is down every request fails alike: said once every this many seconds.
DB_WARNING_S = 10.0
_database_warning = EveryFewSeconds(log, DB_WARNING_S)


def not_found(kind: str, ident: object) -> ApiError:
    return ApiError(404, f"{kind}_not_found", f"no {kind.replace('_', ' ')} {ident!r}")


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def _where(loc: tuple[Any, ...]) -> str:
    """('body', 'windows', 3, 'values') -> 'windows[3].values'."""
    out = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path") else loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _problem(e: Any) -> dict[str, str]:
    """One validation error as {field, problem}; a body that is not JSON says where it broke
    (pydantic's location is then the character's offset, not a field)."""
    if e["type"] == "json_invalid":
        at = e["loc"][-1] if isinstance(e["loc"][-1], int) else "?"
        why = (e.get("ctx") or {}).get("error", e["msg"])
        return {"field": "body", "problem": f"not valid JSON at character {at}: {why}"}
    return {"field": _where(tuple(e["loc"])), "problem": e["msg"]}


def _allowed(request: Request) -> str | None:
    """Every method the request's path takes, read off the OpenAPI document's paths:
    Starlette's own Allow names the first matching route's only (PUT for a line, which also
    takes GET and DELETE)."""
    for template, operations in request.app.openapi()["paths"].items():
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), request.url.path):
            return ", ".join(sorted(m.upper() for m in operations))
    return None


async def _api(_: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(error_body(exc.code, exc.message, exc.details), exc.status)


async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [_problem(e) for e in exc.errors()]
    first = problems[0] if problems else {"field": "body", "problem": "invalid"}
    msg = f"{first['field']}: {first['problem']}"
    if len(problems) > 1:
        msg += f" (and {len(problems) - 1} more problems)"
    return JSONResponse(error_body("invalid_request", msg, problems[:50]), 422)


async def _database(_: Request, exc: Exception) -> JSONResponse:
    """The database did not answer (down, restarting, unreachable, SQLite's writer held
    past busy_timeout, or every pooled connection busy past the pool's timeout): a
    gateway should resend, not drop the batch. A scoring call's 503 may carry the batch's
    scores all the same, for a gateway that acts on alarms at once."""
    _database_warning.warn("database unavailable, answered 503: %s", exc.__cause__ or exc)
    message = ("the database did not answer, so this request may not have been stored: "
               f"send it again in {RETRY_AFTER_S} s or later (with a batch_id it is counted "
               "once)")
    details = None
    provisional = exc.provisional if isinstance(exc, DatabaseDown) else None
    if provisional is not None:
        message += ("; details.provisional holds its scores under model version "
                    f"{provisional['model_version']}, stored nowhere until it is sent again")
        details = {"provisional": provisional}
    return JSONResponse(error_body("database_unavailable", message, details), 503,
                        headers={"Retry-After": str(RETRY_AFTER_S)})


async def _fault(_: Request, exc: Exception) -> JSONResponse:
    """A fault of the service, not of the request, in the contract's shape; Starlette
    then re-raises it, and the server logs its traceback."""
    return JSONResponse(error_body(
        "internal_error", f"the service failed on this request ({type(exc).__name__}; "
        "logged with its traceback): it is a fault on our side, not in the request"), 500)


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {400: "invalid_json", 404: "not_found", 405: "method_not_allowed"}.get(
        exc.status_code, "http_error")
    message, headers = str(exc.detail), exc.headers
    if exc.status_code == 400:  # FastAPI could not decode the body at all
        message = ("the body could not be read: send JSON in UTF-8 with Content-Type: "
                   "application/json")
    if exc.status_code == 405 and (allow := _allowed(request)):
        message, headers = f"{request.method} is not allowed here; use {allow}", {
            **(headers or {}), "Allow": allow}  # RFC 9110
    return JSONResponse(error_body(code, message), exc.status_code, headers=headers)


def install(app: FastAPI) -> None:
    """Every failure in the contract's shape (the handlers above)."""
    app.exception_handler(ApiError)(_api)
    app.exception_handler(RequestValidationError)(_invalid)
    for down in (*DB_DOWN, DatabaseDown):
        app.exception_handler(down)(_database)
    app.exception_handler(StarletteHTTPException)(_http)
    app.exception_handler(Exception)(_fault)
