"""The shipped Prometheus alerts (docker/prometheus/alerts.yml) parse, and name only metrics the
service exports: a rule on a renamed or misspelt metric never fires, and one that does not
parse stops Prometheus loading the whole file; nothing else would say so."""

from __future__ import annotations

from pathlib import Path

import promql_parser
import pytest
import yaml

from tests.app.conftest import Api, exported_series, metrics_named

RULES = Path(__file__).resolve().parents[2] / "docker" / "prometheus" / "alerts.yml"
PROMETHEUS_OWN = {"up"}  # made by Prometheus, not the service


def test_every_alert_names_metrics_the_service_exports(api: Api) -> None:
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert rules and all({"alert", "expr"} <= set(r) for r in rules)
    exported = exported_series(api)
    for rule in rules:
        missing = metrics_named(rule["expr"]) - PROMETHEUS_OWN - exported
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
