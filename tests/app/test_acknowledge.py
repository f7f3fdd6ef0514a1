"""Operators acknowledge anomaly events and judge them; dashboards count what waits."""

from __future__ import annotations

from sqlalchemy import select

from app.tables import AuditEntry
from models.synthetic import make_windows
from tests.app.conftest import CHANNELS, WINDOW, Api, coded_window, metric, post_windows

UNACKED, VERDICTS = "lifeline_anomaly_events_unacknowledged", "lifeline_anomaly_event_verdicts"


def _event(api: Api, line: str, seed: int) -> None:
    """One event: a window with a sensor's out-of-range code (always an alarm) at 20 x seed
    seconds, then normal windows from the line's event gap (60 s) on, until one is scored
    normal and closes it."""
    assert post_windows(api, line, coded_window(seed), 20 * seed)[0]["anomaly"] is True
    for s in range(seed + 1, seed + 20):
        normal = make_windows(1, 4, WINDOW, 0, seed=s)
        if not post_windows(api, line, normal, 20 * seed + 60 + s)[0]["anomaly"]:
            return
    raise AssertionError("no normal window closed the event")


def test_operators_acknowledge_and_judge_events_and_dashboards_count_them(api: Api) -> None:
    for line in ("a", "b"):
        api.call("PUT", f"/v1/lines/{line}", json={"channels": CHANNELS, "window": WINDOW,
                                                   "min_windows": 100})
        post_windows(api, line, make_windows(150, 4, WINDOW, 0, seed=1))
        api.tick()
    _event(api, "a", 10)
    _event(api, "a", 40)
    _event(api, "b", 70)
    url = "/v1/lines/a/anomalies"
    newer, older = api.call("GET", url, params={"acknowledged": "false"}).json()["anomalies"]
    assert (newer["acknowledged_at"], newer["verdict"]) == (None, None)
    assert metric(api.client, UNACKED, 'line="a"') == 2
    assert metric(api.client, VERDICTS, 'line="a",verdict="fault"') == 0

    ack = f"{url}/{older['id']}/acknowledge"
    for role in ("viewer", "gateway"):
        assert api.call("POST", ack, key=api.new_key(role)).status_code == 403
    for body in ({"verdict": "maybe"}, {"verdict": "fault", "by": "me"}, {"note": "x" * 501}):
        r = api.call("POST", ack, json=body)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", body
    b_event = api.call("GET", "/v1/lines/b/anomalies").json()["anomalies"][0]["id"]
    for missing in (f"{url}/{b_event}/acknowledge", f"{url}/999999/acknowledge",
                    "/v1/lines/nope/anomalies/1/acknowledge"):
        assert api.call("POST", missing).status_code == 404, missing  # b's event, not a's
    assert api.call("POST", f"{url}/0/acknowledge").status_code == 422

    r = api.call("POST", ack, json={"verdict": "fault", "note": "WO-4411: pump seal"})
    assert r.status_code == 200, r.text
    judged = r.json()
    assert (judged["verdict"], judged["note"]) == ("fault", "WO-4411: pump seal")
    assert judged["acknowledged_by"].endswith("bootstrap") and judged["acknowledged_at"]
    assert {k: judged[k] for k in older if k.startswith(("start", "max_", "top"))} == {
        k: older[k] for k in older if k.startswith(("start", "max_", "top"))}

    seen = api.call("POST", f"{url}/{newer['id']}/acknowledge")  # seen, not yet judged
    assert seen.status_code == 200 and seen.json()["verdict"] is None
    assert metric(api.client, UNACKED, 'line="a"') == 0
    r = api.call("POST", f"{url}/{newer['id']}/acknowledge", json={"verdict": "false_alarm"})
    assert r.json()["verdict"] == "false_alarm"  # judged later, after the shift's report

    assert api.call("GET", url, params={"acknowledged": "false"}).json()["anomalies"] == []
    assert len(api.call("GET", url, params={"acknowledged": "true"}).json()["anomalies"]) == 2
    assert metric(api.client, VERDICTS, 'line="a",verdict="fault"') == 1
    assert metric(api.client, VERDICTS, 'line="a",verdict="false_alarm"') == 1
    assert metric(api.client, UNACKED, 'line="b"') == 1
    with api.svc.sessions() as s:
        entries = list(s.scalars(select(AuditEntry).where(
            AuditEntry.action == "anomaly.acknowledge").order_by(AuditEntry.id)))
    assert [e.details["verdict"] for e in entries] == ["fault", None, "false_alarm"]
