from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query

from app import anomalies, lines
from app.api.deps import DB, Operator, Viewer
from app.api.lines import LineId
from app.schemas.anomalies import AcknowledgeRequest, AnomalyList, AnomalyOut
from app.schemas.errors import documented
from app.schemas.times import UtcTime

router = APIRouter(prefix="/v1/lines", tags=["anomalies"], responses=documented(401, 403, 500, 503))
EventId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the event's `id`")]


@router.get("/{line_id}/anomalies", response_model=AnomalyList,
            responses=documented(404, 422))
def list_anomalies(
    line_id: LineId, session: DB, _: Viewer, since: UtcTime | None = None,
    acknowledged: Annotated[bool | None, Query(
        description="false: only events no operator has acknowledged yet")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    line = lines.get_line(session, line_id)
    rows = anomalies.list_events(session, line_id=line_id, since=since,
                                 acknowledged=acknowledged, limit=limit)
    return {"anomalies": [anomalies.event_out(e, open_event_id=line.open_event_id)
                          for e in rows]}


@router.post("/{line_id}/anomalies/{event_id}/acknowledge", response_model=AnomalyOut,
             responses=documented(400, 404, 422))
def acknowledge(line_id: LineId, event_id: EventId, session: DB, who: Operator,
                req: AcknowledgeRequest | None = Body(None)) -> dict[str, Any]:
    """Mark the event seen, optionally with a verdict (`fault` or `false_alarm`) and a note;
    again later to change them."""
    req = req or AcknowledgeRequest()
    line = lines.get_line(session, line_id)
    event = anomalies.acknowledge(session, line_id=line_id, event_id=event_id,
                                  verdict=req.verdict, note=req.note, actor=who.actor)
    return anomalies.event_out(event, open_event_id=line.open_event_id)
