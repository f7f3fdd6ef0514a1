"""The one error shape, documented on every route with the statuses it answers, so that
/openapi.json (and the clients generated from it) know what a 404 or a 409 carries."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorOut(BaseModel):
    error: ErrorDetail


_WHY = {
    400: "the body could not be read as JSON (UTF-8)",
    401: "no key, or a key the service does not know (`Authorization: Bearer <key>`)",
    403: "the key's role may not do this",
    404: "no such line, job or model version (or path)",
    409: "conflict with the line's state: the code says which (job_in_progress, ...)",
    413: "the body or batch is too large",
    422: "bad input: the message names the field, window or row, and how to fix it",
    500: "a fault on the service's side (logged with its traceback), not in the request",
    503: "the database did not answer: resend after Retry-After seconds (a batch_id makes the "
         "resend count once); on /readyz also a scheduler that is not running",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses (a route's 422 replaces FastAPI's own
    validation schema, which is not the shape this service answers with)."""
    return {s: {"model": ErrorOut, "description": _WHY[s]} for s in statuses}


# Scoring's 503 (app/scorer.py): the contract's retry, and the scores where they could be had.
SCORED_503: dict[int | str, dict[str, Any]] = {503: {"model": ErrorOut, "description": (
    _WHY[503] + "; for a line whose model this replica holds, `details.provisional` is the "
    "batch's answer in the 200's shape, scored but stored nowhere until the batch is resent")}}
