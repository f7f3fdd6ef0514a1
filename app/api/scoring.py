"""POST windows: JSON (the contract) or a binary .npy array (for high-rate gateways)."""

import io
import time
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app import scorer, windows
from app.api import json_windows
from app.api.deps import DB, Gateway, Svc
from app.api.lines import LineId
from app.auth import may_post
from app.errors import ApiError
from app.schemas.errors import SCORED_503, documented
from app.schemas.scoring import FastScoreRequest, ScoreRequest, ScoreResponse

router = APIRouter(prefix="/v1/lines", tags=["scoring"], responses=documented(401, 403, 500, 503))
NPY = "application/x-npy"
_NPY_MAGIC = b"\x93NUMPY"  # numpy.lib.format.MAGIC_PREFIX


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its `$defs` inlined: in the OpenAPI document a "#/$defs/..."
    reference resolves against the document's root, where they are not."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(defs[node["$ref"].rsplit("/", 1)[1]])
            return {k: walk(v) for k, v in node.items()}
        return [walk(v) for v in node] if isinstance(node, list) else node

    return walk(schema)  # type: ignore[no-any-return]


_BODY_DOC = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": _inlined(ScoreRequest.model_json_schema())},
    NPY: {"schema": {"type": "string", "format": "binary",
                     "description": "numpy .npy of float32 [N, window, channels], NaN = "
                                    "missing; batch_id and learn as query parameters"}}}}}


@router.post("/{line_id}/windows", response_model=ScoreResponse, openapi_extra=_BODY_DOC,
             responses=documented(400, 404, 413, 422) | SCORED_503)
async def post_windows(line_id: LineId, request: Request, session: DB, who: Gateway, svc: Svc,
                       batch_id: str | None = None, learn: bool = True) -> Response:
    t0 = time.perf_counter()
    may_post(who, line_id)
    body = await request.body()
    if request.headers.get("content-type", "").startswith(NPY):
        x = _load_npy(body)
        size, parse = (len(x) if x.ndim else 0), lambda line: windows.Batch(
            windows.check_array(x, line), [None] * len(x), batch_id, learn)
    else:
        req, values = _parse_json(body)
        size, batch_id = len(req.windows), req.batch_id
        parse = lambda line: windows.from_fast_request(  # noqa: E731
            req, line, values, lambda: _validate(body))
    # Torch and the database run in the threadpool, never on the event loop.
    out = await run_in_threadpool(scorer.score_batch, session, line_id=line_id, parse=parse,
                                  size=size, batch_id=batch_id, ctx=svc.scoring)
    svc.metrics.request_latency.labels(line_id).observe(time.perf_counter() - t0)
    # The dict was built to the response schema; validating it again cost a third of a batch.
    return Response(orjson.dumps(out), media_type="application/json")


def _parse_json(body: bytes) -> tuple[FastScoreRequest, np.ndarray | None]:
    """The envelope, validated, and the values as one array when simdjson could decode them
    straight into it (json_windows). Otherwise orjson and a schema that leaves `values`
    unchecked: pydantic walking every float of a 256-window batch took half the request; the
    values become one numpy array later, and only when that fails does `_validate` run the full
    schema to name the bad field."""
    try:
        if (fast := json_windows.decode(body)) is not None:
            envelope, values = fast
            return FastScoreRequest.model_validate(envelope), values
        return FastScoreRequest.model_validate(orjson.loads(body)), None
    except orjson.JSONDecodeError as exc:
        raise ApiError(422, "invalid_json", f"the body is not valid JSON: {exc}") from None
    except ValidationError:
        _validate(body)
        raise


def _validate(body: bytes) -> ScoreRequest:
    try:
        return ScoreRequest.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


def _load_npy(body: bytes) -> np.ndarray:
    if not body.startswith(_NPY_MAGIC):  # else numpy reports "pickled data" for any garbage
        raise ApiError(422, "invalid_npy", "the body is not a .npy array (it does not start "
                       "with the .npy magic bytes); write it with numpy.save")
    try:
        return np.load(io.BytesIO(body), allow_pickle=False)  # never unpickle a request
    except Exception as exc:  # any unreadable body gets the same answer
        raise ApiError(422, "invalid_npy", f"the body is not a readable .npy array: {exc}; "
                       "write it with numpy.save (no object arrays)") from None
