"""The Grafana dashboard shipped in docker/grafana: every panel's query parses and reads only
metrics the service exports (a panel on a renamed metric shows "No data" and nobody notices),
and the files Grafana provisions from find each other: the dashboard where the provider looks,
its panels on the provisioned data source, every line panel following the `line` selector."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from tests.app.conftest import Api, exported_series, metrics_named

DOCKER = Path(__file__).resolve().parents[2] / "docker"
GRAFANA = DOCKER / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "lifeline.json"
# Grafana's own variables, as it fills them in before Prometheus sees the query.
FILLED = {"$__rate_interval": "1m", "$line": ".*"}


def _panels() -> list[dict[str, Any]]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def _queries() -> list[tuple[str, str]]:
    """(panel or annotation, query as Prometheus receives it)."""
    dashboard = json.loads(DASHBOARD.read_text())
    named = [(p["title"], t["expr"]) for p in _panels() for t in p["targets"]]
    named += [(a["name"], a["expr"]) for a in dashboard["annotations"]["list"]]
    out = []
    for title, expr in named:
        for var, value in FILLED.items():
            expr = expr.replace(var, value)
        out.append((title, expr))
    return out


def test_every_panel_query_parses_as_promql() -> None:
    assert len(_queries()) >= 20
    for title, expr in _queries():
        try:
            promql_parser.parse(expr)
        except ValueError as exc:
            pytest.fail(f"{title!r}: {exc}\n{expr}")


def test_every_panel_reads_metrics_the_service_exports(api: Api) -> None:
    exported = exported_series(api)
    for title, expr in _queries():
        named = metrics_named(expr)
        assert named, f"{title!r} reads no Lifeline metric"
        assert not named - exported, f"{title!r} reads {sorted(named - exported)}, " \
                                     "which /metrics lacks"
    lines = json.loads(DASHBOARD.read_text())["templating"]["list"][0]["definition"]
    assert metrics_named(lines) <= exported and "line" in lines  # label_values(metric, line)


def test_the_provisioned_files_find_each_other() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    source = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    uid = source["datasources"][0]["uid"]
    for panel in _panels():
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert all(t["datasource"]["uid"] == uid for t in panel["targets"]), panel["title"]
        if panel["title"] != "Database":  # one gauge per replica, not per line
            assert all('line=~"$line"' in t["expr"] for t in panel["targets"]), panel["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["uid"]
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["line"]

    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/lifeline.yml").read_text())
    grafana = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]["grafana"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"])
    assert mounts["./grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{mounts['./grafana/dashboards']}/{DASHBOARD.name}"
