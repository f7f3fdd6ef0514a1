from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from app import lines
from app.api.deps import DB, Viewer
from app.api.lines import LineId
from app.schemas.anomalies import AnomalyList
from app.schemas.errors import documented
from app.tables import AnomalyEvent

router = APIRouter(prefix="/v1/lines", tags=["anomalies"], responses=documented(401, 403))


@router.get("/{line_id}/anomalies", response_model=AnomalyList,
            responses=documented(404, 422))
def list_anomalies(line_id: LineId, session: DB, _: Viewer, since: datetime | None = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    lines.get_line(session, line_id)
    q = select(AnomalyEvent).where(AnomalyEvent.line_id == line_id)
    if since is not None:
        q = q.where(AnomalyEvent.end >= since)
    rows = session.scalars(q.order_by(AnomalyEvent.start.desc()).limit(limit))
    return {"anomalies": [
        {"id": e.id, "start": e.start, "end": e.end, "windows": e.windows,
         "max_score": e.max_score, "max_score_ratio": e.max_score_ratio,
         "top_channels": e.top_channels, "model_version": e.model_version} for e in rows]}
