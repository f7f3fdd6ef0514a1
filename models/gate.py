"""The promotion gate: may a trained student replace its teacher?

It compares the two on held-out fresh windows (fit), on the teacher's replay (retention: did the
student forget what the teacher knew?) and checks the false-alarm rate at the student's threshold.
Reasons are written for an operator, not for an ML engineer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from models.detector import Detector
from models.replay import replay_windows
from models.scoring import (
    excess_nll,
    excess_nll_standardised,
    score,
    score_and_excess_nll_standardised,
)

# Student may score the teacher's replay at most this much worse on average than the teacher.
MAX_RETENTION_RATIO = 1.5
# Student may fit fresh windows of a known regime at most this much worse than the teacher.
MAX_FIT_RATIO = 1.25


@dataclass(frozen=True)
class GateReport:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


def gate(
    student: Detector, heldout: np.ndarray, target_far: float, *,
    teacher: Detector | None = None, new_regime: bool = False,
    replay_per_regime: int = 256, seed: int = 0,
) -> GateReport:
    scored = score(student, heldout)
    s = scored.score
    m: dict[str, float] = {
        "heldout_windows": float(len(s)),
        "fit_student": float(np.mean(excess_nll(student, heldout))),
        "false_alarm_rate": float(np.mean(scored.anomalous())),
        "threshold": student.threshold,
        # Each regime's alarm threshold, which its windows are judged against (`threshold` is
        # the largest): one far above the others means a buffer that strung several operating
        # points together into one regime, which then tolerates all of their spreads.
        **{f"regime_threshold_{r}": t for r, t in sorted(student.alarm_thresholds.items())},
    }
    reasons: list[str] = []
    if not (np.isfinite(s).all() and math.isfinite(student.threshold + m["fit_student"])):
        reasons.append("training diverged: the new model gives non-finite scores")
        return GateReport(False, reasons, m)
    limit = max(3 * target_far, 3 / max(len(s), 1))
    if m["false_alarm_rate"] > limit:
        reasons.append(
            f"too many false alarms: {m['false_alarm_rate']:.1%} of held-out normal windows "
            f"pass the new thresholds (allowed {limit:.1%})"
        )
    if teacher is not None:
        reasons += _compare(student, teacher, heldout, s, m, new_regime, replay_per_regime, seed)
    return GateReport(not reasons, reasons, m)


def _compare(
    student: Detector, teacher: Detector, heldout: np.ndarray, s: np.ndarray,
    m: dict[str, float], new_regime: bool, per_regime: int, seed: int,
) -> list[str]:
    reasons: list[str] = []
    m["fit_teacher"] = float(np.mean(excess_nll(teacher, heldout)))
    xs, mask, m["replay_fidelity"] = replay_windows(teacher, per_regime, seed)
    dev = next(student.vae.parameters()).device
    score_s, nll_s = score_and_excess_nll_standardised(student.vae, xs.to(dev), mask.to(dev))
    rep_score, rep_s = score_s.cpu().numpy(), nll_s.cpu().numpy()
    rep_t = excess_nll_standardised(teacher.vae, xs, mask).cpu().numpy()
    m["retention"] = float(np.mean(rep_s) / max(np.mean(rep_t), 1e-9))
    m["replay_false_alarm_rate"] = float(np.mean(rep_score > student.threshold))
    if m["retention"] > MAX_RETENTION_RATIO:
        reasons.append(
            f"forgot earlier regimes: it explains windows of the regimes it already knew "
            f"{m['retention']:.2f}x worse than the model in service (allowed "
            f"{MAX_RETENTION_RATIO}x)"
        )
    if not new_regime and m["fit_student"] > MAX_FIT_RATIO * m["fit_teacher"]:
        reasons.append(
            f"fits the fresh data worse than the model in service (mean misfit "
            f"{m['fit_student']:.1f} vs {m['fit_teacher']:.1f}, allowed {MAX_FIT_RATIO}x)"
        )
    return reasons
