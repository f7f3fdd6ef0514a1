"""The per-line principal-axes setting through the HTTP API: on by default, off trains models on
the sensors' own axes, and it is fixed by the line's first model."""

from __future__ import annotations

from typing import Any

import numpy as np

import models
from app import registry
from models.synthetic import make_windows
from tests.app.conftest import CHANNELS, WINDOW, Api, train_first_models, windows_json


def put(api: Api, line: str, **kw: object) -> Any:
    return api.call("PUT", f"/v1/lines/{line}", json={"channels": CHANNELS, "window": WINDOW,
                                                     "min_windows": 300, **kw})


def active_detector(api: Api, line: str) -> models.Detector:
    version = api.call("GET", f"/v1/lines/{line}").json()["active_model"]["version"]
    with api.svc.sessions() as s:
        return models.from_bytes(registry.get_version(s, line, version).artifact)


def test_principal_axes_is_a_line_setting_fixed_by_the_first_model(api: Api) -> None:
    assert put(api, "press-1").json()["principal_axes"] is True  # the default
    r = put(api, "press-2", principal_axes=False)
    assert r.status_code == 201 and r.json()["principal_axes"] is False
    assert put(api, "press-2", principal_axes="sometimes").status_code == 422

    train_first_models(api, ["press-1", "press-2"], make_windows(320, len(CHANNELS), WINDOW, 0,
                                                                 seed=1))
    on, off = active_detector(api, "press-1"), active_detector(api, "press-2")
    assert on.bank.axes is not None and not np.allclose(on.bank.axes[0], np.eye(len(CHANNELS)))
    assert off.bank.axes is None

    probe = make_windows(30, len(CHANNELS), WINDOW, 0, seed=8)
    r = api.call("POST", "/v1/lines/press-2/windows",
                 json={"windows": windows_json(probe), "learn": False})
    results = r.json()["results"]
    assert r.status_code == 200 and all(res["status"] == "scored" for res in results)
    assert np.mean([res["anomaly"] for res in results]) < 0.2
    assert all(abs(sum(res["contributions"].values()) - 1) < 1e-5 for res in results)  # 6 places

    r = put(api, "press-2", principal_axes=True)
    assert r.status_code == 409 and r.json()["error"]["code"] == "line_shape_locked"
    assert "principal_axes" in r.json()["error"]["message"]
    assert r.json()["error"]["details"] == {"principal_axes": False}


def test_a_sensor_silent_through_the_first_training_keeps_its_axis_and_is_named(
        api: Api) -> None:
    """A sensor that sent nothing while the line's first model trained: the others are still
    rotated together, it keeps its own axis, the job names it, and the line scores."""
    assert put(api, "kiln").status_code == 201
    windows = make_windows(320, len(CHANNELS), WINDOW, 0, seed=1)
    windows[:, :, 2] = np.nan
    train_first_models(api, ["kiln"], windows)
    axes = active_detector(api, "kiln").bank.axes
    assert axes is not None
    np.testing.assert_array_equal(axes[0, 2], np.eye(len(CHANNELS))[2])
    live = [0, 1, 3]
    assert not np.allclose(axes[0][np.ix_(live, live)], np.eye(3))
    job = api.call("GET", "/v1/lines/kiln/jobs").json()["jobs"][0]
    assert job["metrics"]["silent_channels"] == [CHANNELS[2]]
    probe = make_windows(30, len(CHANNELS), WINDOW, 0, seed=8)
    probe[:, :, 2] = np.nan
    r = api.call("POST", "/v1/lines/kiln/windows",
                 json={"windows": windows_json(probe), "learn": False})
    assert r.status_code == 200 and all(x["status"] == "scored" for x in r.json()["results"])
    assert np.mean([x["anomaly"] for x in r.json()["results"]]) < 0.2
