"""The shipped Prometheus alerts (docker/prometheus/alerts.yml) parse, and name only metrics the
service exports: a rule on a renamed or misspelt metric never fires, and one that does not
parse stops Prometheus loading the whole file; nothing else would say so."""

from __future__ import annotations

import re
from pathlib import Path

import promql_parser
import pytest
import yaml

from models.synthetic import inject_fault, make_windows
from tests.app.conftest import CHANNELS, WINDOW, Api, train_first_models, windows_json

RULES = Path(__file__).resolve().parents[2] / "docker" / "prometheus" / "alerts.yml"
# Series Prometheus itself makes, not the service.
PROMETHEUS_OWN = {"up"}


def _exported(api: Api) -> set[str]:
    """Every series name on /metrics once a line has trained, scored, alarmed and queued a
    retrain (a labelled metric shows only after its first sample)."""
    r = api.call("PUT", "/v1/lines/p", json={"channels": CHANNELS, "window": WINDOW,
                                             "min_windows": 200})
    assert r.status_code == 201, r.text
    train_first_models(api, ["p"], make_windows(250, 4, WINDOW, 0, seed=1))
    fault = inject_fault(make_windows(4, 4, WINDOW, 0, seed=2), channel=2, magnitude=12.0)
    results = api.call("POST", "/v1/lines/p/windows", json={
        "windows": windows_json(fault)}).json()["results"]
    assert any(x["anomaly"] for x in results)
    api.call("POST", "/v1/lines/p/windows", json={
        "windows": windows_json(make_windows(250, 4, WINDOW, 0, seed=3))})
    assert api.call("POST", "/v1/lines/p/retrain").status_code == 202  # queued: a job's age
    text = api.call("GET", "/metrics").text
    return {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M)}


def test_every_alert_names_metrics_the_service_exports(api: Api) -> None:
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert rules and all({"alert", "expr"} <= set(r) for r in rules)
    exported = _exported(api)
    for rule in rules:
        expr = re.sub(r'"[^"]*"', "", rule["expr"])  # label values are not metric names
        named = set(re.findall(r"\b(lifeline_[a-z0-9_]+|up)\b", expr)) - PROMETHEUS_OWN
        missing = named - exported
        assert not missing, f"{rule['alert']} names {sorted(missing)}, which /metrics lacks"


def _rules() -> list[dict[str, str]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_every_alert_parses_as_promql() -> None:
    for rule in _rules():
        try:
            promql_parser.parse(rule["expr"])
        except ValueError as exc:
            pytest.fail(f"{rule['alert']}: {exc}")


def test_an_ongoing_event_does_not_alert_while_its_line_is_silent() -> None:
    """The silent-line alert says it, and the event is as old as the line's last window: the
    ongoing-event rule is the event gauge, less the lines past their own silence limit."""
    rule = next(r for r in _rules() if r["alert"] == "LifelineAnomalyOngoing")
    expr = promql_parser.parse(rule["expr"])
    assert isinstance(expr, promql_parser.BinaryExpr) and str(expr.op) == "unless"
    assert "lifeline_anomaly_event_open" in str(expr.lhs) and str(expr.modifier) == "on (line)"
    silent = next(r for r in _rules() if r["alert"] == "LifelineLineSilent")
    assert isinstance(expr.rhs, promql_parser.ParenExpr)
    assert str(expr.rhs.expr) == str(promql_parser.parse(silent["expr"]))
