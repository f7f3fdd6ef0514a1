from typing import Annotated, Any

from fastapi import APIRouter, Query

from app import audit
from app.api.deps import DB, Viewer
from app.schemas.audit import AuditList
from app.schemas.errors import documented
from app.schemas.times import UtcTime

router = APIRouter(tags=["audit"], responses=documented(401, 403, 500, 503))


@router.get("/v1/audit", response_model=AuditList, responses=documented(422))
def list_audit(
    session: DB, _: Viewer,
    line_id: Annotated[str | None, Query(max_length=64,
                                         description="one line's, deleted or not")] = None,
    action: Annotated[str | None, Query(max_length=64,
                                        description="e.g. model.activate")] = None,
    since: UtcTime | None = None,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="page back: entries "
                                        "older than this id")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Who did what to which line, newest first: line changes, retrains, discards, promotions
    and rollbacks, cancels, acknowledgements, API keys created or revoked."""
    rows = audit.list_entries(session, line_id=line_id, action=action, since=since,
                              before=before, limit=limit)
    return {"entries": [audit.entry_out(e) for e in rows]}
