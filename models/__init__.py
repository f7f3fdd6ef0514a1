"""Lifeline's models: the lifelong VAE for sensor windows, as a torch-only library.

The service uses this surface and nothing else:
    train_student / train_joint -> calibrate_detector -> gate -> to_bytes / from_bytes, score;
    reuse_freed_memory once per scoring process.
"""

from models.allocator import reuse_freed_memory
from models.calibration import calibrate, calibrate_detector
from models.config import STRATEGIES, TrainConfig, VAEConfig
from models.detector import Detector
from models.gate import GateReport, gate
from models.lifelong import TrainResult, train_joint, train_student
from models.preprocessing import RegimeBank, check_windows
from models.scoring import Scores, score
from models.serialization import FORMAT_VERSION, from_bytes, to_bytes

__all__ = [
    "FORMAT_VERSION", "STRATEGIES", "Detector", "GateReport", "RegimeBank", "Scores",
    "TrainConfig", "TrainResult", "VAEConfig", "calibrate", "calibrate_detector",
    "check_windows", "from_bytes", "gate", "reuse_freed_memory", "score", "to_bytes", "train_joint",
    "train_student",
]
