import time
from typing import Any

from fastapi import APIRouter

from app import scorer
from app.api.deps import DB, Gateway, Svc
from app.api.lines import LineId
from app.schemas.scoring import ScoreRequest, ScoreResponse

router = APIRouter(prefix="/v1/lines", tags=["scoring"])


@router.post("/{line_id}/windows", response_model=ScoreResponse)
def post_windows(line_id: LineId, req: ScoreRequest, session: DB, _: Gateway,
                 svc: Svc) -> dict[str, Any]:
    # A plain `def` route: FastAPI runs it in its threadpool, so torch never blocks the loop.
    t0 = time.perf_counter()
    out = scorer.score_batch(session, line_id=line_id, req=req, ctx=svc.scoring)
    svc.metrics.request_latency.labels(line_id).observe(time.perf_counter() - t0)
    return out
