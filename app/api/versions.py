from typing import Annotated, Any

from fastapi import APIRouter, Path

from app import lines, registry
from app.api.deps import DB, Operator, Viewer
from app.api.lines import LineId
from app.schemas.errors import documented
from app.schemas.versions import VersionList, VersionOut
from app.tables import ModelVersion

router = APIRouter(prefix="/v1/lines", tags=["models"], responses=documented(401, 403, 500, 503))
# The database's integer: a larger number is a 422, not a driver's overflow (a 500).
Version = Annotated[int, Path(ge=1, le=2**31 - 1, description="a version number of the line")]


def version_out(v: ModelVersion) -> dict[str, Any]:
    return {"version": v.version, "parent_version": v.parent_version, "status": v.status,
            "created_at": v.created_at, "activated_at": v.activated_at, "regimes": v.regimes,
            "threshold": v.threshold, "metrics": v.metrics, "reasons": v.reasons,
            "job_id": v.job_id, "pruned_at": v.pruned_at}


@router.get("/{line_id}/models", response_model=VersionList, responses=documented(404, 422))
def list_models(line_id: LineId, session: DB, _: Viewer) -> dict[str, Any]:
    lines.get_line(session, line_id)
    return {"models": [version_out(v) for v in registry.list_versions(session, line_id)]}


@router.post("/{line_id}/models/{version}/activate", response_model=VersionOut,
             responses=documented(404, 409, 422))
def activate(line_id: LineId, version: Version, session: DB, who: Operator) -> dict[str, Any]:
    line = lines.get_line(session, line_id)
    return version_out(registry.activate_version(session, line=line, version=version,
                                                 actor=who.actor))
