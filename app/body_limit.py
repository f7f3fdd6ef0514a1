"""Refuse a request whose declared body is over the limit, before reading it."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import error_body


class BodyLimit:
    """Plain ASGI middleware. Starlette's `@app.middleware("http")` form runs every request
    through an extra task and a response stream, time that a one-window request noticed
    (bench/README.md, throughput)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = Headers(scope=scope).get("content-length")
            if size is not None and size.isdigit() and int(size) > self.limit:
                response = JSONResponse(error_body(
                    "body_too_large", f"request body is {size} bytes; the limit is "
                    f"{self.limit} (LIFELINE_MAX_BODY_BYTES): split the batch"), 413)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
