"""A line's fresh buffer: what an operator may discard before the next retrain learns it."""

from typing import Annotated, Any

from fastapi import APIRouter, Query

from app import lines
from app.api.deps import DB, Operator
from app.api.lines import LineId
from app.schemas.errors import documented
from app.schemas.lines import BufferDiscarded
from app.schemas.times import UtcTime

router = APIRouter(prefix="/v1/lines", tags=["lines"], responses=documented(401, 403, 500, 503))
When = Annotated[UtcTime | None, Query(
    description="RFC 3339 with a zone; a window's time is its `start`, else when it arrived")]


@router.delete("/{line_id}/buffer", response_model=BufferDiscarded,
                responses=documented(404, 409, 422))
def discard_windows(line_id: LineId, session: DB, who: Operator, since: When = None,
                    until: When = None, reason: Annotated[str | None, Query(max_length=500)] = None
                    ) -> dict[str, Any]:
    """Delete the buffered windows timed in [since, until) (either bound optional; neither:
    the whole buffer), so that the next retrain does not learn a span in which the line did
    not run normally. 409 job_in_progress while a job trains on the buffer."""
    deleted = lines.discard_windows(session, line_id=line_id, since=since, until=until,
                                    reason=reason, actor=who.actor)
    line = lines.get_line(session, line_id)
    return {"line_id": line_id, "deleted": deleted, "buffer": lines.buffer_state(session, line)}
