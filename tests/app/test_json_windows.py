"""JSON bodies decoded straight into arrays: same values as the general path, or None for it."""

from __future__ import annotations

import json

import numpy as np
import orjson

from app.api import json_windows
from models.synthetic import make_windows
from tests.app.conftest import windows_json


def _body(windows: list[dict], **envelope: object) -> bytes:
    return orjson.dumps({**envelope, "windows": windows})


def test_values_match_the_general_path_and_the_envelope_is_kept() -> None:
    x = make_windows(5, 4, 16, 0, seed=0)
    x[1, 2, 3] = np.nan  # a null in window 1 only
    ws = windows_json(x)
    ws[2]["values"][0] = [1, 2, 3, 4]  # integers are numbers too
    body = _body(ws, batch_id="gw-1", learn=False)
    decoded = json_windows.decode(body)
    assert decoded is not None
    envelope, values = decoded
    general = np.array([w["values"] for w in orjson.loads(body)["windows"]], dtype=np.float32)
    np.testing.assert_array_equal(values, general)  # NaN where null, equal elsewhere
    assert values.dtype == np.float32 and np.isnan(values[1, 2, 3])
    assert envelope["batch_id"] == "gw-1" and envelope["learn"] is False
    assert envelope["windows"][0] == {"start": ws[0]["start"], "values": []}


def test_anything_unusual_goes_to_the_general_path() -> None:
    ws = windows_json(make_windows(2, 4, 16, 0, seed=0))
    ragged = [dict(ws[0], values=[ws[0]["values"][0] + [0.0], ws[0]["values"][1][:3],
                                  *ws[0]["values"][2:]])]  # 5 + 3 values: same total count
    text = [dict(ws[0], values=[["x"] * 4] * 16)]
    flat = [dict(ws[0], values=[0.0] * 64)]
    for body in (_body(ragged), _body(text), _body(flat), _body([]), b"[1, 2]", b"{not json",
                 _body([dict(ws[0]), dict(ws[1], values=ws[1]["values"][:8])]),
                 json.dumps({"batch_id": 10**30, "windows": ws}).encode(),  # > 64 bits
                 json.dumps({"windows": [dict(ws[0], values=[[10**30] * 4] * 16)]}).encode()):
        assert json_windows.decode(body) is None, body[:80]
