"""Where training jobs run: LIFELINE_TRAIN_DEVICE, resolved once when the service starts."""

from __future__ import annotations

import pytest
import torch
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.main import create_app
from app.settings import Settings
from app.trainer import resolve_device
from tests.app.conftest import settings_for


def test_auto_trains_on_cuda_where_torch_sees_it_else_on_the_cpu(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(ValueError, match="cuda:2, but torch sees 2 CUDA device"):
        resolve_device("cuda:2")


def test_a_cuda_device_torch_cannot_see_stops_the_service_at_start(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    app = create_app(settings_for(db_url, train_device="cuda"))
    with pytest.raises(ValueError, match="LIFELINE_TRAIN_DEVICE=cuda, but torch sees 0"), \
            TestClient(app):
        pass


def test_an_unknown_device_name_is_refused_by_the_settings() -> None:
    with pytest.raises(ValidationError, match="train_device"):
        Settings(train_device="gpu0")
