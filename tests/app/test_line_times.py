"""What a line's answer says of time. A line whose gateway stops posting raises no anomaly: the
answer and /metrics say when its last window arrived and how long it may be silent, so an alert
can say the line is no longer watched, and a fault after the silence is a new event. And
`updated_at` is when an operator last changed it, not when a window last did."""

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
    coded_window,
    metric,
    post_windows,
    train_first_models,
    writes_of,
)

SEEN = "lifeline_last_window_received_timestamp_seconds"
SILENT_AFTER = "lifeline_line_silent_after_seconds"


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


def _events(api: Api) -> list[dict[str, object]]:
    return api.call("GET", "/v1/lines/l/anomalies").json()["anomalies"]  # type: ignore[no-any-return]


def test_a_fault_after_the_line_was_silent_is_a_new_event(api: Api) -> None:
    """A line stopped in the middle of an event, and back hours later with the fault: extending
    the old event, which an operator acknowledged before the stop, would hide the fault."""
    r = api.call("PUT", "/v1/lines/l", json={"channels": CHANNELS, "window": WINDOW,
                                             "min_windows": 100, "silent_after_s": 600})
    assert r.status_code == 201 and r.json()["silent_after_s"] == 600
    assert metric(api.client, SILENT_AFTER, 'line="l"') == 600.0
    train_first_models(api, ["l"], make_windows(150, 4, WINDOW, 0, seed=1))
    [first] = post_windows(api, "l", coded_window(2), 0, learn=False)
    assert first["anomaly"] and first["event_id"] is not None
    r = api.call("POST", f"/v1/lines/l/anomalies/{first['event_id']}/acknowledge", json={})
    assert r.status_code == 200, r.text
    _age_stamp(api, timedelta(seconds=590))  # quiet, but not for silent_after_s
    [again] = post_windows(api, "l", coded_window(3), 1, learn=False)
    assert again["event_id"] == first["event_id"]
    _age_stamp(api, timedelta(seconds=600))
    # the same data clock (a gateway's backlog would look so): silence is timed by arrival
    [after] = post_windows(api, "l", coded_window(4), 2, learn=False)
    assert after["anomaly"] and after["event_id"] not in (None, first["event_id"])
    new, old = _events(api)  # newest first
    assert (new["id"], new["open"], new["acknowledged_at"], new["windows"]) == (
        after["event_id"], True, None, 1)
    assert (old["id"], old["open"], old["windows"]) == (first["event_id"], False, 2)
    assert old["acknowledged_at"] is not None
    assert metric(api.client, "lifeline_anomaly_events_unacknowledged", 'line="l"') == 1.0
    # back from silence with a normal window: the event closes, and none opens
    _age_stamp(api, timedelta(seconds=600))
    normal = post_windows(api, "l", make_windows(1, 4, WINDOW, 0, seed=5), 3, learn=False)
    assert normal[0]["anomaly"] is False
    assert [e["open"] for e in _events(api)] == [False, False]
    assert metric(api.client, "lifeline_anomaly_event_open", 'line="l"') == 0.0


def test_silent_after_is_checked_and_kept(api: Api) -> None:
    base = {"channels": CHANNELS, "window": WINDOW}
    assert api.call("PUT", "/v1/lines/l", json=base).json()["silent_after_s"] == 900
    r = api.call("PUT", "/v1/lines/l", json={**base, "silent_after_s": 30})
    assert r.status_code == 422 and "silent_after_s" in r.text
    r = api.call("PUT", "/v1/lines/l", json={**base, "silent_after_s": 10_800})
    assert r.status_code == 200 and r.json()["silent_after_s"] == 10_800
    assert metric(api.client, SILENT_AFTER, 'line="l"') == 10_800.0
