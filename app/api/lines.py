from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from app import lines
from app.api.deps import DB, Operator, Svc, Viewer
from app.schemas.errors import documented
from app.schemas.lines import LINE_ID, LineConfig, LineList, LineOut

router = APIRouter(prefix="/v1/lines", tags=["lines"], responses=documented(401, 403, 500, 503))
LineId = Annotated[str, Path(pattern=LINE_ID, description="1-64 of A-Z a-z 0-9 _ . -")]


@router.put("/{line_id}", response_model=LineOut, responses={
    201: {"model": LineOut, "description": "created"}, **documented(400, 409, 422)})
def put_line(line_id: LineId, cfg: LineConfig, session: DB, who: Operator, svc: Svc,
             response: Response) -> dict[str, Any]:
    line, created = lines.put_line(session, line_id=line_id, cfg=cfg, actor=who.actor,
                                   default_buffer_limit=svc.settings.buffer_limit,
                                   buffer_max_mb=svc.settings.buffer_max_mb,
                                   rng=svc.scoring.rng)
    response.status_code = 201 if created else 200
    return lines.describe(session, line)


@router.get("", response_model=LineList, responses=documented(422))
def list_lines(session: DB, _: Viewer) -> dict[str, Any]:
    return {"lines": lines.describe_all(session, lines.list_lines(session))}


@router.get("/{line_id}", response_model=LineOut, responses=documented(404, 422))
def get_line(line_id: LineId, session: DB, _: Viewer) -> dict[str, Any]:
    return lines.describe(session, lines.get_line(session, line_id))


@router.delete("/{line_id}", status_code=204, response_class=Response,
                responses=documented(404, 422))
def delete_line(line_id: LineId, session: DB, who: Operator, svc: Svc) -> None:
    """Decommission a line: it, its buffered windows, models, jobs and anomaly events are
    deleted (the audit trail keeps the deletion). A job running on it stops within seconds."""
    lines.delete_line(session, line_id=line_id, actor=who.actor)
    svc.metrics.forget(line_id)
    svc.scoring.views.pop(line_id, None)  # scored no more through an outage (app/scorer.py)
