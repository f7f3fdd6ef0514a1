"""Anomalous windows group into the events operators see, by the line's event gap (an
off-delay): the service's rule is the one bench.quality measures on SKAB."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from app.tables import Line
from bench.detection import group_events
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

# (first start in seconds, windows, positions given a sensor's out-of-range code: an alarm)
SEQUENCE = [(0, 10, (3, 5)), (10, 10, (2,)), (50, 1, (0,)), (51, 50, (39,)), (200, 3, (1, 2))]


def _seconds(stamp: str) -> float:
    return (datetime.fromisoformat(stamp) - datetime.fromisoformat("2026-11-28T05:00:00Z")
            ).total_seconds()


def _post_sequence(api: Api, line: str) -> tuple[np.ndarray, np.ndarray, list[int | None]]:
    """Each window's flag as answered, its start in seconds, and the event it joined."""
    flags, seconds, joined = [], [], []
    for k, (start_s, n, coded) in enumerate(SEQUENCE):
        x = make_windows(n, 4, WINDOW, 0, seed=100 + k)
        x[list(coded), 3, 1] = 3e38
        results = post_windows(api, line, x, start_s, learn=False)
        flags += [res["anomaly"] for res in results]
        joined += [res["event_id"] for res in results]
        seconds += list(range(start_s, start_s + n))
    return np.array(flags), np.array(seconds, float), joined


@pytest.mark.parametrize("gap", [0, 30])
def test_events_close_after_the_line_has_looked_normal_for_its_gap(api: Api, gap: int) -> None:
    r = api.call("PUT", "/v1/lines/l", json={"channels": CHANNELS, "window": WINDOW,
                                             "min_windows": 100, "event_gap_s": gap})
    assert r.status_code == 201 and r.json()["event_gap_s"] == gap
    train_first_models(api, ["l"], make_windows(150, 4, WINDOW, 0, seed=1))
    flags, seconds, joined = _post_sequence(api, "l")
    want = [(seconds[a], seconds[b], int(flags[a : b + 1].sum()))
            for a, b in group_events(flags, seconds, gap)]
    events = api.call("GET", "/v1/lines/l/anomalies").json()["anomalies"]  # newest first
    got = sorted((_seconds(e["start"]), _seconds(e["end"]), e["windows"]) for e in events)
    assert got == want
    # the sequence ends on two coded windows: the newest event is still open, no other is
    assert [e["open"] for e in events] == [True] + [False] * (len(events) - 1)
    # each anomalous window's answer names the event it joined, a normal one none
    spans = {e["id"]: (_seconds(e["start"]), _seconds(e["end"])) for e in events}
    assert [j is not None for j in joined] == flags.tolist()
    assert all(spans[j][0] <= t <= spans[j][1] for j, t in zip(joined, seconds, strict=True)
               if j is not None)
    assert {j for j in joined if j is not None} == set(spans)
    assert metric(api.client, "lifeline_anomaly_event_open", 'line="l"') == 1.0
    opened = metric(api.client, "lifeline_anomaly_events_total", 'line="l"')
    assert opened == len(events)  # counted as they open, once each
    # the coded windows alone would make 6 events with no gap and 3 with 30 s: the normal
    # windows between 3 and 5, 5 and 12, 12 and 50 lie within it, the 39 s after 50 do not
    coded = np.isin(seconds, [start_s + i for start_s, _, at in SEQUENCE for i in at])
    assert len(group_events(coded, seconds, gap)) == (6 if gap == 0 else 3)


def test_event_gap_is_checked_and_kept(api: Api) -> None:
    base = {"channels": CHANNELS, "window": WINDOW}
    r = api.call("PUT", "/v1/lines/l", json={**base, "event_gap_s": -1})
    assert r.status_code == 422 and "event_gap_s" in r.text
    assert api.call("PUT", "/v1/lines/l", json=base).json()["event_gap_s"] == 60  # the default
    r = api.call("PUT", "/v1/lines/l", json={**base, "event_gap_s": 300})
    assert r.status_code == 200 and api.call("GET", "/v1/lines/l").json()["event_gap_s"] == 300


def test_a_normal_window_within_the_gap_writes_nothing(api: Api) -> None:
    """Read-only scoring skips the line's lock and commit unless a window closes an event: an
    open event must not put every call of its minute on the write path."""
    api.call("PUT", "/v1/lines/l", json={"channels": CHANNELS, "window": WINDOW,
                                         "min_windows": 100, "event_gap_s": 30})
    train_first_models(api, ["l"], make_windows(150, 4, WINDOW, 0, seed=1))
    coded = coded_window(2)

    def post(x: np.ndarray, start_s: int) -> list[bool]:
        return [res["anomaly"] for res in post_windows(api, "l", x, start_s, learn=False)]

    assert post(coded, 0) == [True]
    normal = make_windows(21, 4, WINDOW, 0, seed=3)
    quiet = 0
    for i in range(20):  # starts 5-24 s: within the gap of the event's end at 0 s
        flags: list[bool] = []
        sent = writes_of(api, lambda i=i, out=flags: out.extend(post(normal[i : i + 1], 5 + i)))
        if flags == [False]:
            quiet += 1
            assert not sent, sent
    assert quiet >= 15
    assert writes_of(api, lambda: post(normal[20:], 300))  # five minutes on: closes the event
    with api.svc.sessions() as s:
        assert s.get_one(Line, "l").open_event_id is None
    assert [e["open"] for e in api.call("GET", "/v1/lines/l/anomalies").json()["anomalies"]
            ] == [False]
    assert metric(api.client, "lifeline_anomaly_event_open", 'line="l"') == 0.0
