"""What the Grafana dashboard reads, so tests can hold it against what the nodes export.

The dashboard (helm/anonreid/dashboards/anonreid.json) is plain Grafana JSON; its panels query
Prometheus with PromQL. :func:`dashboard_metric_names` lists every metric those queries (and the
dashboard's template variables) name, as the sample names they use, e.g.
``anonreid_camera_stage_latency_seconds_bucket``, which is exactly what a node's ``/metrics`` page
shows. A test can scrape the running demo and check that each one exists, and another that the names
are the ones agreed in the contracts (:func:`metric_family` maps a sample name back to its family).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from anonreid.orchestration.infra.files import load_json

#: The chart's dashboard, relative to the repository root.
DASHBOARD_PATH = Path(__file__).resolve().parents[1] / "helm" / "anonreid" / "dashboards" / "anonreid.json"

# A metric name in PromQL, once strings and label parts are removed: our metrics all carry the
# `anonreid_` prefix (DESIGN.md), so no function, keyword or duration can be mistaken for one.
_METRIC_RE = re.compile(r"(?<![A-Za-z0-9_:\"'$])(anonreid_[A-Za-z0-9_:]*)")
_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
# Where PromQL names labels rather than metrics: label matchers `{...}` and the label lists of
# aggregations and vector matching, e.g. `sum by (le, camera)`, `on (camera)`, `group_left (stage)`.
_LABEL_PARTS_RE = re.compile(
    r"\{[^}]*\}|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


class DashboardError(ValueError):
    """The dashboard file is unreadable or not a Grafana dashboard; the message names the file."""


def load_dashboard(path: str | Path = DASHBOARD_PATH) -> dict[str, Any]:
    path = Path(path)
    data = load_json(path, "dashboard", DashboardError)
    if not isinstance(data, dict) or not isinstance(data.get("panels"), list):
        raise DashboardError(f"dashboard {path} has no 'panels' list (not a Grafana dashboard)")
    return data


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression: panel targets and query template variables."""
    queries = [
        target["expr"]
        for panel in iter_panels(dashboard)
        for target in panel.get("targets", [])
        if isinstance(target.get("expr"), str)
    ]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = query.get("query") if isinstance(query, dict) else query
        if isinstance(text, str):
            queries.append(text)
    return queries


def promql_metric_names(expr: str) -> set[str]:
    """Metric (sample) names an expression selects; label values in quotes are not names."""
    metrics_only = _LABEL_PARTS_RE.sub(" ", _STRING_RE.sub('""', expr))
    return set(_METRIC_RE.findall(metrics_only))


def dashboard_metric_names(path: str | Path = DASHBOARD_PATH) -> set[str]:
    """Every sample name the dashboard queries, as a ``/metrics`` page shows it."""
    names: set[str] = set()
    for expr in dashboard_queries(load_dashboard(path)):
        names |= promql_metric_names(expr)
    return names


def metric_family(sample_name: str) -> str:
    """``x_bucket`` / ``x_sum`` / ``x_count`` -> ``x`` (the histogram); other names are unchanged.

    Counters keep their ``_total``: that is the name the contracts and PromQL use.
    """
    for suffix in _HISTOGRAM_SUFFIXES:
        if sample_name.endswith(suffix):
            return sample_name[: -len(suffix)]
    return sample_name
