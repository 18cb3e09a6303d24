"""The Grafana dashboard and the alert rules only use metrics the collector exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streamfsm import StreamController
from streamfsm.credentials import Credentials
from streamfsm.metrics import StreamCollector
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET

DOCS = Path(__file__).resolve().parents[1] / "docs"
NAME = re.compile(r"\bstreamfsm_[a-z_]+")
#: Sample names a family of each type exposes beside its own.
SUFFIXES = ("", "_total", "_bucket", "_count", "_sum", "_created")


def exported_names() -> set[str]:
    """Every sample name the collector can expose (families without samples included)."""
    ctl = StreamController(Credentials(DEMO_KEY_ID, DEMO_SECRET), symbols=["AAPL"], on_quote=print)
    collector = StreamCollector(ctl)
    registry = CollectorRegistry()
    registry.register(collector)
    families = {f.name for f in text_string_to_metric_families(generate_latest(registry).decode())}
    families |= {f.name for f in collector.collect()}
    return {family + suffix for family in families for suffix in SUFFIXES}


def test_the_dashboard_uses_only_exported_metrics() -> None:
    """Each expression of docs/grafana-dashboard.json names metrics the collector exports."""
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text(encoding="utf-8"))
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for expr in expressions for name in NAME.findall(expr)}
    assert used
    assert used <= exported_names(), used - exported_names()


def test_every_alert_uses_exported_metrics_and_has_a_runbook_section() -> None:
    """Each rule's metrics exist, and docs/oncall.md has a section for each alert."""
    rules = (DOCS / "prometheus-alerts.yml").read_text(encoding="utf-8")
    used = set(NAME.findall(rules))
    assert used <= exported_names(), used - exported_names()
    oncall = (DOCS / "oncall.md").read_text(encoding="utf-8")
    alerts = re.findall(r"- alert: (\w+)", rules)
    assert len(alerts) >= 10
    for alert in alerts:
        assert f"### {alert}\n" in oncall, alert
        assert f"docs/oncall.md#{alert.lower()}" in rules, alert
