"""Shape-only channels through the HTTP API: validated against the line's channels, fixed by the
first model, and a drift of such a channel is no alarm while its neighbours' faults still are."""

from __future__ import annotations

import numpy as np

from models.synthetic import inject_fault, make_windows
from tests.app.conftest import CHANNELS, WINDOW, Api, train_first_models, windows_json

TEMP = CHANNELS.index("temp")


def put(api: Api, line: str, **kw: object) -> object:
    return api.call("PUT", f"/v1/lines/{line}", json={"channels": CHANNELS, "window": WINDOW,
                                                     "min_windows": 300, **kw})


def alarm_share(api: Api, line: str, x: np.ndarray) -> float:
    r = api.call("POST", f"/v1/lines/{line}/windows",
                 json={"windows": windows_json(x), "learn": False})
    assert r.status_code == 200, r.text
    return float(np.mean([res["anomaly"] for res in r.json()["results"]]))


def test_shape_only_channels_must_be_channels_of_the_line(api: Api) -> None:
    r = put(api, "kiln-0", shape_only_channels=["temp", "humidity"])
    assert r.status_code == 422
    message = r.json()["error"]["message"]
    assert "shape_only_channels" in message and "humidity" in message


def test_a_drifting_shape_only_channel_raises_no_alarm_and_stays_fixed(api: Api) -> None:
    r = put(api, "kiln-1", shape_only_channels=["temp"])
    assert r.status_code == 201 and r.json()["shape_only_channels"] == ["temp"]
    assert put(api, "kiln-2").json()["shape_only_channels"] == []  # the default: none
    train = make_windows(320, len(CHANNELS), WINDOW, 0, seed=1)
    train_first_models(api, ["kiln-1", "kiln-2"], train)

    probe = make_windows(40, len(CHANNELS), WINDOW, 0, seed=8)
    warmer = probe.copy()
    warmer[:, :, TEMP] += 10 * train[:, :, TEMP].std()  # the level moves, the shape does not
    assert alarm_share(api, "kiln-2", warmer) > 0.9  # a plain line alarms on the drift
    assert alarm_share(api, "kiln-1", warmer) < 0.1
    fault = inject_fault(probe, channel=CHANNELS.index("pressure"), magnitude=4.0)
    assert alarm_share(api, "kiln-1", fault) > 0.9  # the other channels still alarm

    r = put(api, "kiln-1", shape_only_channels=[])
    assert r.status_code == 409 and r.json()["error"]["code"] == "line_shape_locked"
    assert "shape_only_channels" in r.json()["error"]["message"]
