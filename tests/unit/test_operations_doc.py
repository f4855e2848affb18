"""docs/operations.md lists every exported metric, and the Grafana dashboard uses only those."""

from __future__ import annotations

import json
import re
from pathlib import Path

import tidings.api.app  # noqa: F401  (every module that defines metrics)
from tidings import metrics

DOCS = Path(__file__).parents[2] / "docs"


def exported_names() -> set[str]:
    names = set()
    for family in metrics.REGISTRY.collect():
        names.add(family.name + "_total" if family.type == "counter" else family.name)
    return names


def test_every_metric_is_listed_in_operations_md() -> None:
    text = (DOCS / "operations.md").read_text()
    missing = sorted(name for name in exported_names() if f"`{name}`" not in text)
    assert missing == []


def test_the_dashboard_queries_only_exported_metrics() -> None:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(expressions) >= 12
    known = exported_names()
    for expression in expressions:
        for name in re.findall(r"\b(?:tidings|process|python)_[a-z_]+", expression):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert name in known or base in known, name
