"""docs/operations.md lists every metric the server exports, and the Grafana
dashboard uses only metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

from mailevents_server.metrics import Metrics

DOCS = Path(__file__).resolve().parents[2] / "docs"


def exported_names() -> set[str]:
    """Names as scraped: counters with `_total`, histograms by their family name."""
    names = set()
    for family in Metrics().registry.collect():
        names.add(family.name + ("_total" if family.type == "counter" else ""))
    # Reported at scrape time only for the store that has them.
    return names | {
        "mailevents_store_database_bytes",
        "mailevents_store_wal_bytes",
        "mailevents_store_pool_connections",
    }


def test_every_metric_is_documented() -> None:
    text = (DOCS / "operations.md").read_text()
    documented = set(re.findall(r"`(mailevents_[a-z_]+)`", text))
    assert exported_names() <= documented
    assert documented <= exported_names()


def test_the_dashboard_queries_only_exported_metrics() -> None:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for expr in exprs
        for name in re.findall(r"mailevents_[a-z_]+", expr)
    }
    assert used <= exported_names()
    assert len(used) >= 15
