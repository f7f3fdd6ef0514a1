from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response
from sqlalchemy import select

from app import jobs, lines
from app.api.deps import DB, Operator, Viewer
from app.api.lines import LineId
from app.errors import not_found
from app.schemas.errors import documented
from app.schemas.training import CancelRequest, JobAccepted, JobList, JobOut, RetrainRequest
from app.tables import TrainingJob

router = APIRouter(tags=["training"], responses=documented(401, 403, 500, 503))


def job_out(j: TrainingJob) -> dict[str, Any]:
    return {"job_id": j.id, "line_id": j.line_id, "trigger": j.trigger, "status": j.status,
            "new_regime": j.new_regime, "created_at": j.created_at, "started_at": j.started_at,
            "finished_at": j.finished_at, "attempts": j.attempts,
            "model_version": j.model_version, "metrics": j.metrics or {}, "error": j.error,
            "reason": j.reason, "cancel_requested_at": j.cancel_requested_at}


@router.post("/v1/lines/{line_id}/retrain", status_code=202, response_model=JobAccepted,
             responses=documented(400, 404, 409, 422))
def retrain(line_id: LineId, session: DB, who: Operator,
            req: RetrainRequest | None = Body(None)) -> dict[str, Any]:
    req = req or RetrainRequest()
    line = lines.get_line(session, line_id, lock=True)  # not deleted until the job is queued
    job = jobs.request_retrain(session, line=line, new_regime=req.new_regime, reason=req.reason,
                               actor=who.actor)
    return {"job_id": job.id, "status": job.status}


@router.get("/v1/jobs/{job_id}", response_model=JobOut, responses=documented(404, 422))
def get_job(job_id: str, session: DB, _: Viewer) -> dict[str, Any]:
    job = session.get(TrainingJob, job_id)
    if job is None:
        raise not_found("job", job_id)
    return job_out(job)


@router.post("/v1/jobs/{job_id}/cancel", response_model=JobOut,
             responses={202: {"model": JobOut, "description": "running: stops at its next epoch"},
                        **documented(400, 404, 409, 422)})
def cancel_job(job_id: str, session: DB, who: Operator, response: Response,
               req: CancelRequest | None = Body(None)) -> dict[str, Any]:
    """200 with the job cancelled when it was queued; 202 when it is running, which ends
    `cancelled` within a few seconds, at its next epoch, with no new version; 409 once ended."""
    job = jobs.cancel(session, job_id=job_id, actor=who.actor, reason=req.reason if req else None)
    if job.status == "running":
        response.status_code = 202
    return job_out(job)


@router.get("/v1/lines/{line_id}/jobs", response_model=JobList, responses=documented(404, 422))
def line_jobs(line_id: LineId, session: DB, _: Viewer,
              limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    lines.get_line(session, line_id)
    rows = session.scalars(select(TrainingJob).where(TrainingJob.line_id == line_id)
                           .order_by(TrainingJob.created_at.desc()).limit(limit))
    return {"jobs": [job_out(j) for j in rows]}
