"""``anonreid adversary run`` (the adversary node in this process) and ``anonreid audit report``.

Heavy imports (torch, the attack models) happen inside the commands so ``anonreid --help`` stays fast.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from anonreid.orchestration.cli_common import (
    ConfigOption,
    SetOption,
    option_or_config,
    resolve_config,
    serve_until_stopped,
)

adversary_app = typer.Typer(help="The adversary node: attacks the audit tap continuously.", no_args_is_help=True)
audit_app = typer.Typer(help="The privacy auditor's report.", no_args_is_help=True)

RedisOption = Annotated[str, typer.Option("--redis-url", help="Redis holding the audit streams (default: redis.url)")]

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: float | None = None) -> int:
    """``--since``: empty (everything), a duration back from now (``30m``, ``2h``, ``7d``), an ISO 8601
    time (UTC unless it says otherwise) or Unix seconds; returns microseconds since the epoch."""
    text = text.strip()
    if not text:
        return 0
    now = time.time() if now is None else now
    m = _RELATIVE.match(text)
    if m:
        return int((now - float(m.group(1)) * _UNIT_S[m.group(2)]) * 1e6)
    try:
        return int(float(text) * 1e6)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: expected a duration (30m, 2h, 7d), an ISO time (2026-11-26T09:00) or Unix seconds",
            param_hint="--since",
        ) from None
    return int((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp() * 1e6)


def _redis(url: str, cfg):  # type: ignore[no-untyped-def]
    from anonreid.orchestration.redis_service import connect

    return connect(option_or_config(url, cfg.redis.url, "--redis-url", "redis.url", "Redis"), cfg.redis.password or None)


@adversary_app.command("run")
def adversary_run(
    redis_url: RedisOption = "",
    duration: Annotated[float, typer.Option(help="stop after this many seconds (0 = until Ctrl-C)")] = 0.0,
    metrics_port: Annotated[int, typer.Option(help="Prometheus port (default: adversary.metrics_port)")] = -1,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the final stats here")] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Attack the audit streams of the configured cameras every adversary.interval_s, until stopped."""
    from anonreid.models.evaluation.privacy_policy import PolicyError
    from anonreid.nodes.adversary.node import AdversaryNode
    from anonreid.nodes.metrics import serve_metrics

    cfg = resolve_config(config, set_)
    client = _redis(redis_url, cfg)
    try:
        node = AdversaryNode(cfg.adversary, client, world=cfg.world)
    except (PolicyError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    port = serve_metrics(cfg.adversary.metrics_port if metrics_port < 0 else metrics_port, cfg.adversary.metrics_host)
    typer.echo(f"adversary: metrics on :{port}, cameras {', '.join(cfg.adversary.cameras)}", err=True)
    serve_until_stopped(node, duration, json_out)


@audit_app.command("report")
def audit_report(
    out: Annotated[Path, typer.Option("--out", help="directory for report.html and report.json")],
    since: Annotated[str, typer.Option(help="only scores since: 30m, 2h, 7d, an ISO time or Unix seconds")] = "",
    redis_url: RedisOption = "",
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Write the auditor's report (self-contained HTML + JSON) from the audit log in Redis."""
    from anonreid.models.evaluation.privacy_policy import PolicyError, PrivacyPolicy
    from anonreid.nodes.adversary.report import report_data, write_report

    cfg = resolve_config(config, set_)
    since_us = parse_since(since)
    try:
        policy = PrivacyPolicy.load(cfg.adversary.policy or None)
    except PolicyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    data = report_data(_redis(redis_url, cfg), policy, cfg.adversary.cameras, since_us)
    html_path, json_path = write_report(data, out)
    typer.echo(json.dumps({"overall": data.overall, "html": str(html_path), "json": str(json_path),
                           "records": len(data.records), "alerts": len(data.alerts)}))
