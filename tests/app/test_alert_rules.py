"""The shipped Prometheus alerts (docker/prometheus/alerts.yml) parse, name only metrics the
service exports (a rule on a renamed or misspelt metric never fires, and one that does not
parse stops Prometheus loading the whole file; nothing else would say so), and fire when and
only when they should: promtool's unit tests (alert_scenarios.yml) on series as the replicas
export them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import promql_parser
import pytest
import yaml

from tests.app.conftest import Api, exported_series, metrics_named

RULES = Path(__file__).resolve().parents[2] / "docker" / "prometheus" / "alerts.yml"
SCENARIOS = Path(__file__).with_name("alert_scenarios.yml")
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


def _promtool() -> str:
    """On PATH, or beside this venv's python, where `make test` unpacks it from Debian's
    prometheus package; CI (LIFELINE_REQUIRE_PROMTOOL=1) fails without it."""
    beside = Path(sys.executable).with_name("promtool")
    found = shutil.which("promtool") or (str(beside) if beside.exists() else None)
    if found is None:
        why = "promtool not found: `make test` unpacks it where apt-get can fetch Debian's " \
              "prometheus package"
        if os.environ.get("LIFELINE_REQUIRE_PROMTOOL") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return found


def test_every_alert_fires_when_and_only_when_its_scenario_says(tmp_path: Path) -> None:
    """promtool compares annotations word for word, so the scenarios run against the rules
    without them; `check rules` checks the annotations' templates."""
    promtool = _promtool()
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    rules = yaml.safe_load(RULES.read_text())
    for rule in (r for g in rules["groups"] for r in g["rules"]):
        rule.pop("annotations", None)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    shutil.copy(SCENARIOS, tmp_path)
    run = subprocess.run([promtool, "test", "rules", SCENARIOS.name], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    tested = {t["alertname"] for case in yaml.safe_load(SCENARIOS.read_text())["tests"]
              for t in case["alert_rule_test"]}
    assert tested == {r["alert"] for r in _rules()}, "every alert has a scenario"
