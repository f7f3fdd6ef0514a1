from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from app.api.deps import Svc
from app.errors import error_body
from app.schemas.errors import documented

router = APIRouter(tags=["service"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses=documented(503))
def readyz(svc: Svc) -> JSONResponse:
    problems = []
    try:
        with svc.sessions() as s:
            s.execute(text("SELECT 1"))
    except Exception as exc:  # any database failure means not ready
        problems.append(f"database: {type(exc).__name__}")
    if svc.settings.scheduler_enabled and not svc.scheduler.running:
        problems.append("scheduler is not running")
    if problems:
        return JSONResponse(error_body("not_ready", "; ".join(problems)), 503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics", response_class=Response, responses={
    200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
def metrics(svc: Svc) -> Response:
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
