"""Model version <-> bytes. Loading never executes code from the artifact.

The artifact is a `torch.save` of plain containers (tensors, str, numbers) read back with
`weights_only=True`, torch's restricted unpickler: an artifact carrying a code object fails to
load instead of running it. The architecture travels as JSON next to the weights.
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import torch

from models.config import VAEConfig
from models.detector import Detector
from models.preprocessing import RegimeBank
from models.vae import WindowVAE

# 2: the score dropped its log-std term (models/scoring.py); format-1 thresholds are in other units.
# 3: shape-only channels (models/preprocessing.py). A model without them is still written as 2,
# so replicas of an older release keep loading it; one with them is refused there, not misread.
# 4: the regimes' principal axes (models/preprocessing.py); an older release would score such a
# model on the sensors' own axes, so it refuses it.
FORMAT_VERSION = 4
_READABLE = (2, 3, 4)


def _format(bank: RegimeBank) -> int:
    return FORMAT_VERSION if bank.axes is not None else 3 if bank.shape_only else 2


def to_bytes(det: Detector) -> bytes:
    meta = {
        "format_version": _format(det.bank),
        "shape_only": list(det.bank.shape_only),
        "vae": det.vae.cfg.to_dict(),
        "threshold": det.threshold,
        "regime_thresholds": {str(k): v for k, v in det.regime_thresholds.items()},
        # Read by this release only; older ones ignore them and filter replay by the alarm
        # threshold, as they always did.
        "fit_threshold": det.replay_threshold,
        "fit_regime_thresholds": {str(k): v for k, v in det.fit_thresholds.items()},
        # Read by this release only; an older one judges the summed score alone, against a
        # threshold this term raised a little (calibrate_detector).
        "sensor_threshold": det.sensor_threshold,
        # Read by this release only; an older one judges every regime against `threshold`,
        # the largest of these.
        "alarm_thresholds": {str(k): v for k, v in det.alarm_thresholds.items()},
    }
    state = {k: v.detach().cpu() for k, v in det.vae.state_dict().items()}
    buf = io.BytesIO()
    # "quiet" is read by this release only; older ones ignore it and flag no stuck sensor.
    blob = {"meta": json.dumps(meta), "bank": torch.from_numpy(det.bank.stats),
            "quiet": torch.from_numpy(det.bank.quiet), "state": state}
    if det.bank.axes is not None:
        blob["axes"] = torch.from_numpy(det.bank.axes)
    if det.sensor_scale is not None:
        blob["sensor_scale"] = torch.from_numpy(det.sensor_scale)
    torch.save(blob, buf)
    return buf.getvalue()


def from_bytes(data: bytes, device: str = "cpu") -> Detector:
    try:
        blob = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
        meta = json.loads(blob["meta"])
    except Exception as exc:  # any malformed or unsafe artifact is refused the same way
        raise ValueError(f"not a valid Lifeline model artifact: {exc}") from exc
    if meta.get("format_version") not in _READABLE:
        raise ValueError(f"unsupported artifact format {meta.get('format_version')!r}")
    vae = WindowVAE(VAEConfig(**meta["vae"])).to(device)
    vae.load_state_dict(blob["state"])
    vae.eval()
    threshold = float(meta["threshold"])
    regime_thresholds = {int(k): float(v) for k, v in meta["regime_thresholds"].items()}
    # Artifacts written before session 10 have no fit thresholds: replay is then filtered by
    # the alarm thresholds, as those releases did.
    fit = meta.get("fit_regime_thresholds", meta["regime_thresholds"])
    stats = blob["bank"].cpu().numpy()
    # Artifacts written before session 12 carry no quiet floors: NaN, no stuck sensor flagged.
    quiet = blob["quiet"].cpu().numpy() if "quiet" in blob else np.full(
        (stats.shape[0], stats.shape[2]), np.nan)
    return Detector(
        vae=vae,
        bank=RegimeBank(stats, quiet, tuple(meta.get("shape_only", ())),
                        blob["axes"].cpu().numpy() if "axes" in blob else None),
        threshold=threshold,
        regime_thresholds=regime_thresholds,
        replay_threshold=float(meta.get("fit_threshold", threshold)),
        fit_thresholds={int(k): float(v) for k, v in fit.items()},
        # Artifacts written before session 19 have no per-sensor term: the sum alone alarms.
        sensor_scale=blob["sensor_scale"].cpu().numpy() if "sensor_scale" in blob else None,
        sensor_threshold=float(meta.get("sensor_threshold", math.inf)),
        # Artifacts written before session 21 judge every regime against `threshold`.
        alarm_thresholds={int(k): float(v) for k, v in meta.get("alarm_thresholds", {}).items()},
    )
