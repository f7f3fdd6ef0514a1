"""What a line's answer says of time. A line whose gateway stops posting raises no anomaly: the
answer and /metrics say when its last window arrived, so an alert can say the line is no longer
watched. And `updated_at` is when an operator last changed it, not when a window last did."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np

from app.db import utcnow
from app.scorer import SEEN_EVERY
from app.tables import Line
from models.synthetic import make_windows
from tests.app.conftest import (
    CHANNELS,
    WINDOW,
    Api,
    metric,
    post_windows,
    train_first_models,
    writes_of,
)

SEEN = "lifeline_last_window_received_timestamp_seconds"


def _last_window_at(api: Api) -> datetime | None:
    stamp = api.call("GET", "/v1/lines/l").json()["last_window_at"]
    return None if stamp is None else datetime.fromisoformat(stamp)


def _post(api: Api, x: np.ndarray, **kw: object) -> list[bool | None]:
    return [res["anomaly"] for res in post_windows(api, "l", x, **kw)]


def _read_only(api: Api, x: np.ndarray) -> tuple[bool | None, list[str]]:
    """One window scored with learn=false: its flag, and the statements that wrote."""
    flags: list[bool | None] = []
    sent = writes_of(api, lambda: flags.extend(_post(api, x[None], learn=False)))
    return flags[0], sent


def _age_stamp(api: Api, by: timedelta) -> datetime:
    """The stamp moved back by `by`, as if the line had been quiet that long."""
    with api.svc.sessions() as s:
        line = s.get_one(Line, "l")
        assert line.last_window_at is not None
        line.last_window_at -= by
        s.commit()
        return line.last_window_at


def test_a_line_shows_when_its_last_window_arrived(api: Api) -> None:
    api.call("PUT", "/v1/lines/l", json={"channels": CHANNELS, "window": WINDOW})
    assert _last_window_at(api) is None  # never posted: unknown, and no alert can fire
    assert math.isnan(metric(api.client, SEEN, 'line="l"'))
    before = utcnow()
    assert _post(api, make_windows(3, 4, WINDOW, 0, seed=1), learn=False) == [None] * 3
    seen = _last_window_at(api)
    assert seen is not None and before <= seen <= utcnow()
    assert metric(api.client, SEEN, 'line="l"') == seen.timestamp()
    # a rejected batch is not a line being watched
    old = _age_stamp(api, timedelta(minutes=20))
    r = api.call("POST", "/v1/lines/l/windows", json={"windows": [{"values": [[1.0]]}]})
    assert r.status_code == 422
    assert _last_window_at(api) == old


def test_read_only_scoring_stamps_the_line_at_most_every_30_s(api: Api) -> None:
    """The stamp must not put every read-only call on the write path (its lock and commit
    halve one-window latency), nor fall further behind than SEEN_EVERY."""
    api.call("PUT", "/v1/lines/l", json={"channels": CHANNELS, "window": WINDOW,
                                         "min_windows": 100})
    train_first_models(api, ["l"], make_windows(150, 4, WINDOW, 0, seed=1))
    normal = make_windows(10, 4, WINDOW, 0, seed=2)
    stamp, quiet = _last_window_at(api), []
    for x in normal:
        flag, sent = _read_only(api, x)
        if flag is False:
            quiet.append(x)
            assert not sent, sent
    assert len(quiet) >= 8 and _last_window_at(api) == stamp
    old = _age_stamp(api, SEEN_EVERY)
    before = utcnow()
    flag, sent = _read_only(api, quiet[0])
    assert flag is False and sent
    seen = _last_window_at(api)
    assert seen is not None and seen >= before > old
    assert metric(api.client, SEEN, 'line="l"') == seen.timestamp()


def test_updated_at_is_when_an_operator_changed_the_line(api: Api) -> None:
    config = {"channels": CHANNELS, "window": WINDOW, "min_windows": 100}
    created = api.call("PUT", "/v1/lines/l", json=config).json()["updated_at"]
    _post(api, make_windows(5, 4, WINDOW, 0, seed=1))  # buffered: the line's counters move
    assert api.call("GET", "/v1/lines/l").json()["buffer"]["windows"] == 5
    assert api.call("GET", "/v1/lines/l").json()["updated_at"] == created
    assert api.call("PUT", "/v1/lines/l", json=config).json()["updated_at"] == created  # as it was
    changed = api.call("PUT", "/v1/lines/l", json={**config, "event_gap_s": 120}).json()
    assert changed["event_gap_s"] == 120
    assert datetime.fromisoformat(changed["updated_at"]) > datetime.fromisoformat(created)
