"""The operations files (deploy/prometheus, deploy/grafana) against the running processes.

An alert on a metric that no process exposes never fires, and a dashboard panel on one
stays empty without an error: the structure is checked here, and every metric name the
rules and the dashboard use is looked up in the ``/metrics`` of a live worker and a live
``smstally api``, on the real embedded broker.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.harness import Cluster, ReadSide, get

REPO = Path(__file__).resolve().parents[1]
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS = REPO / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "smstally-dashboard.json"

METRIC = re.compile(r"\b(smstally_[a-z0-9_]+)")
HISTOGRAM_SERIES = re.compile(r"_(bucket|sum|count)$")
DURATION = re.compile(r"^\d+[smhd]$")


def rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]


def metric_names(exprs: list[str]) -> set[str]:
    return {HISTOGRAM_SERIES.sub("", m) for e in exprs for m in METRIC.findall(e)}


def balanced(expr: str) -> bool:
    depth = {"(": 0, "[": 0, "{": 0}
    close = {")": "(", "]": "[", "}": "{"}
    for ch in expr:
        if ch in depth:
            depth[ch] += 1
        elif ch in close:
            depth[close[ch]] -= 1
            if depth[close[ch]] < 0:
                return False
    return not any(depth.values())


def test_alert_rules_are_well_formed_and_cover_the_four_concerns():
    doc = yaml.safe_load(ALERTS.read_text())
    assert [g["name"] for g in doc["groups"]] == ["smstally-worker", "smstally-read-model"]
    names = [r["alert"] for r in rules()]
    assert len(names) == len(set(names))
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"Smstally[A-Z][A-Za-z]+", rule["alert"])
        assert isinstance(rule["expr"], str) and balanced(rule["expr"]), rule["alert"]
        assert "for" not in rule or DURATION.match(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
    by_name = {r["alert"]: r["expr"] for r in rules()}
    # worker not ready, consumer lag growing, dead letters arriving, the read model behind
    assert "smstally_ready == 0" in by_name["SmstallyWorkerNotReady"]
    assert "deriv(smstally_consumer_lag_records" in by_name["SmstallyConsumerLagGrowing"]
    assert "increase(smstally_dead_letters_total" in by_name["SmstallyDeadLetters"]
    assert "smstally_api_lag_records" in by_name["SmstallyReadModelBehind"]


def test_the_scrape_jobs_the_rules_name_exist():
    conf = yaml.safe_load(PROMETHEUS.read_text())
    assert conf["rule_files"] == ["alerts.yml"]
    jobs = {c["job_name"] for c in conf["scrape_configs"]}
    used = {m for r in rules() for m in re.findall(r'job="([^"]+)"', r["expr"])}
    assert used and used <= jobs == {"smstally-worker", "smstally-api"}


def test_the_grafana_dashboard_is_well_formed():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "smstally" and dash["title"]
    assert dash["templating"]["list"][0]["type"] == "datasource"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    cells = set()
    for p in dash["panels"]:
        assert p["type"] in {"timeseries", "stat", "gauge"} and p["title"], p
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        assert (g["x"], g["y"]) not in cells  # no two panels on one spot
        cells.add((g["x"], g["y"]))
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs))
        for t in p["targets"]:
            assert balanced(t["expr"]) and METRIC.search(t["expr"]), t
    # the worker's and the API's main figures are on it
    used = metric_names(dashboard_exprs())
    assert {"smstally_events_total", "smstally_consumer_lag_records", "smstally_api_lag_records"} <= used


@pytest.mark.integration
def test_every_metric_used_exists_in_a_live_worker_or_api(tmp_path):
    wanted = metric_names([r["expr"] for r in rules()] + dashboard_exprs())
    cluster = Cluster(tmp_path).start()
    read = ReadSide(cluster)
    try:
        worker = cluster.worker()
        worker.wait_ready(90)
        api = read.start()
        api.wait_ready(90)
        exposed = set()
        for port in (worker.web_port, api.web_port):
            status, body = get(port, "/metrics", timeout=5)
            assert status == 200
            exposed |= {line.split()[2] for line in body.decode().splitlines() if line.startswith("# TYPE ")}
        # A counter's TYPE line names it without _total in some client versions: accept both.
        exposed |= {n + "_total" for n in exposed}
        assert sorted(wanted - exposed) == []
        status, body = get(worker.web_port, "/metrics", timeout=5)
        assert "smstally_ready 1.0" in body.decode()  # the scrape alone keeps the gauge true
    finally:
        read.close()
        cluster.close()
