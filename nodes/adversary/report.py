"""The privacy auditor's report: one self-contained HTML file (images inlined) plus the same facts as JSON.

Contents: a verdict per camera and per attack (the latest score's 95% interval against the policy:
pass, insufficient evidence or breach, with the reason when it is not a pass), trends over time
(plots), image grids of what the attacker reconstructs from the anonymized stream, the attack methods,
every attacker network with its training budget, the model versions used, and what could not be
checked (checks that need ground truth, such as SSIM against reference frames, are only possible where
it exists: the simulated world or a paired RGB camera).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from anonreid.models.evaluation.privacy_policy import PrivacyPolicy, Verdict, compute_verdicts, overall_status
from anonreid.nodes.adversary.grids import latest_grid
from anonreid.orchestration.infra.audit_log import AuditLog
from anonreid.proto.v1 import audit_pb2

ATTACK_METHODS = {
    "reconstruction": "E2VID-style recurrent UNet trained on raw events -> reference frames, run on the "
    "anonymized stream; SSIM/PSNR against the reference frames (needs ground truth).",
    "retrieval": "appearance ReId model trained by the attacker on clean frames; each person crop of the "
    "reconstructions ranks the enrollment photos of every enrolled identity; rank-1 vs chance.",
    "inversion": "network trained on (anonymized -> raw) voxel pairs, then the reconstruction attacker and "
    "the retrieval attack on its output.",
    "linear": "closed-form linear least-squares inverse of the anonymizer (fitted offline on training "
    "identities), then the reconstruction attacker and the retrieval attack: the floor every trained attack "
    "must beat.",
    "adaptive": "reconstruction network retrained on (anonymized -> reference frame) pairs collected from "
    "the stream through the anonymizer version the cameras run, refreshed periodically and restarted from "
    "its base weights when that version changes (needs ground truth to train).",
    "finetuned": "the raw reconstruction attacker fine-tuned offline on anonymized events of the training "
    "identities, then the retrieval attack on its output.",
    "identity": "direct identity attack, no reconstruction: a voxel tower embeds each anonymized person crop "
    "and ranks the enrollment photos embedded by a photo tower (trained offline on training identities); "
    "rank-1 vs chance.",
    "face": "face crops of reconstructions against enrollment-photo faces with an attacker-trained face "
    "embedding; ROC AUC.",
}


@dataclass
class ReportData:
    cameras: list[str]
    verdicts: list[Verdict]
    records: list[audit_pb2.AuditRecord]
    alerts: list[audit_pb2.PrivacyAlert]
    grids: dict[str, bytes] = field(default_factory=dict)  # camera -> PNG
    ground_truth_available: bool = True
    attackers: list[dict[str, Any]] = field(default_factory=list)  # the adversary's networks and budgets
    min_identities: int = 5  # the policy's: distinct people a score must cover before it can pass

    @property
    def overall(self) -> str:
        return overall_status(self.verdicts)


def report_data(
    client: redis.Redis, policy: PrivacyPolicy | None = None, cameras: list[str] | None = None, since_us: int = 0
) -> ReportData:
    """The auditor's report from Redis: records and alerts since ``since_us``, the latest grid per camera.

    Cameras are those given plus every camera with a record; ground truth counts as available when any
    score that needs it was recorded (the verdicts then say per check what was not possible).
    """
    policy = policy or PrivacyPolicy.load()
    log = AuditLog(client)
    records = log.records(since_us)
    alerts = log.alerts(since_us)
    names = sorted(set(cameras or []) | {r.camera_id for r in records})
    grids = {camera: png for camera in names if (png := latest_grid(client, camera)) is not None}
    gt = any(r.needs_ground_truth for r in records)
    return ReportData(names, compute_verdicts(records, policy, names, gt), records, alerts, grids, gt,
                      log.attackers(), policy.min_identities)


def _trend_png(records: list[audit_pb2.AuditRecord], metric: str) -> bytes | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[tuple[str, str], list[tuple[float, float, float, float, float]]] = defaultdict(list)
    for r in records:
        if r.metric == metric:
            series[(r.camera_id, r.attack)].append((r.created_at_us / 1e6, r.value, r.chance, r.ci_low, r.ci_high))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=90)
    t0 = min(p[0] for pts in series.values() for p in pts)
    for (camera, attack), pts in sorted(series.items()):
        pts.sort()
        (line,) = ax.plot([p[0] - t0 for p in pts], [p[1] for p in pts], marker="o", ms=3, label=f"{camera} {attack}")
        ax.fill_between([p[0] - t0 for p in pts], [p[3] for p in pts], [p[4] for p in pts], color=line.get_color(),
                        alpha=0.15, lw=0)
        if metric in ("rank1", "map") and not math.isnan(pts[-1][2]):
            ax.plot([p[0] - t0 for p in pts], [p[2] for p in pts], ls=":", color="grey")
    ax.set_xlabel("seconds since first record")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} over time, shaded: 95% interval" + (" (dotted: chance)" if metric in ("rank1", "map") else ""))
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _fmt(v: float, digits: int = 3) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _budget(b: dict[str, Any]) -> str:
    if "steps" not in b:
        return html.escape(str(b.get("source", "not recorded")))
    seen = f"{b.get('samples')} {b.get('unit', 'samples')}"
    extra = f", from {b['init_from']}" if b.get("init_from") else ""
    if b.get("retrains") is not None:  # a live attacker: its budget counts since its last restart
        extra += f", restarted {b['retrains']} times on anonymizer changes"
    return html.escape(f"{b['steps']} steps x batch {b['batch_size']} = {seen}{extra} ({b.get('source')})")


def attackers_html(attackers: list[dict[str, Any]]) -> str:
    if not attackers:
        return "<p>not published by the adversary node</p>"
    rows = "".join(
        f"<tr><td>{html.escape(str(a.get('name')))}</td><td>{html.escape(str(a.get('role', '')))}</td>"
        f"<td>{_budget(a.get('budget', {}))}</td><td>{html.escape(str(a.get('trained_on', '')))}</td>"
        f"<td>{html.escape(str(a.get('checkpoint', '')))}</td></tr>"
        for a in attackers
    )
    return ('<table id="attackers"><tr><th>attacker</th><th>what it does</th><th>training budget</th>'
            f"<th>trained on</th><th>checkpoint</th></tr>{rows}</table>")


def render_html(data: ReportData, title: str = "anonreid privacy audit") -> str:
    rows = []
    for v in data.verdicts:
        rows.append(
            f'<tr class="{v.status.replace(" ", "-")}"><td>{html.escape(v.camera)}</td><td>{v.attack}</td>'
            f"<td>{v.metric}</td><td>{_fmt(v.value)}</td><td>{_fmt(v.ci[0])} – {_fmt(v.ci[1])}</td>"
            f"<td>{_fmt(v.chance)}</td><td>{_fmt(v.threshold)}</td><td>{v.num_samples} / {v.num_identities}</td>"
            f"<td>{v.status}</td><td>{html.escape(v.reason or v.model_version)}</td></tr>"
        )
    trends = []
    for metric in ("ssim", "psnr", "rank1", "map", "auc"):
        png = _trend_png(data.records, metric)
        if png:
            trends.append(f"<figure>{_img(png, f'trend of {metric}')}<figcaption>{metric}</figcaption></figure>")
    grids = "".join(
        f"<figure>{_img(png, f'attacker reconstructions, {cam}')}<figcaption>{html.escape(cam)}: reference | "
        "each attack's reconstruction from the anonymized stream (in simulation reconstructed around the people only: "
        "the flat grey beyond them was not reconstructed)</figcaption></figure>"
        for cam, png in sorted(data.grids.items())
    )
    versions = sorted({r.model_version for r in data.records if r.model_version})
    methods = "".join(f"<li><b>{a}</b>: {html.escape(d)}</li>" for a, d in ATTACK_METHODS.items())
    unchecked = [v for v in data.verdicts if v.status == "not checked"]
    unchecked_html = "".join(
        f"<li>{html.escape(v.camera)} {v.attack}/{v.metric}: {html.escape(v.reason)}</li>" for v in unchecked
    ) or "<li>everything in the policy was checked</li>"
    alerts = "".join(f"<li>{html.escape(a.message)}</li>" for a in data.alerts[-50:]) or "<li>none</li>"
    period = ""
    if data.records:
        t = [r.created_at_us for r in data.records]
        period = f"{_ts(min(t))} – {_ts(max(t))}, {len(data.records)} scores"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}}
table{{border-collapse:collapse;font-size:13px}} td,th{{border:1px solid #ccc;padding:3px 7px;text-align:left}}
tr.breach{{background:#fdd}} tr.pass{{background:#dfd}} tr.not-checked{{background:#eee}}
tr.insufficient-evidence{{background:#fff3cd}}
.verdict{{font-size:1.4em;padding:.4em .8em;display:inline-block}} .v-breach{{background:#fbb}}
.v-pass{{background:#bfb}} .v-not-checked{{background:#ddd}} .v-insufficient-evidence{{background:#ffe08a}}
figure{{display:inline-block;margin:.5em}}
img{{max-width:100%;border:1px solid #ccc}}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Generated {_ts(int(datetime.now(UTC).timestamp() * 1e6))}. Period: {period or "no scores"}.
Cameras: {", ".join(html.escape(c) for c in data.cameras)}.
Ground truth {"available (simulation or paired RGB)" if data.ground_truth_available else "not available"}.</p>
<p class="verdict v-{data.overall.replace(" ", "-")}" id="overall">Overall: {data.overall.upper()}</p>
<h2>Verdict per camera and attack</h2>
<p>Each verdict judges the 95% interval, not the value: <b>pass</b> when its upper bound is at or under the
threshold over at least {html.escape(str(data.min_identities))} people; <b>breach</b> when its lower bound is over
the threshold (or an interval narrower than the rule's margin still reaches over it); <b>insufficient evidence</b>
while the sample cannot decide (the note says why).</p>
<table id="verdicts"><tr><th>camera</th><th>attack</th><th>metric</th><th>value</th><th>95% interval</th>
<th>chance</th><th>threshold</th><th>samples / people</th><th>verdict</th><th>model / note</th></tr>{"".join(rows)}</table>
<h2>Alerts</h2><ul id="alerts">{alerts}</ul>
<h2>Trends</h2>{"".join(trends) or "<p>no scores yet</p>"}
<h2>What the attacker reconstructs from the anonymized stream</h2>{grids or "<p>no images</p>"}
<h2>Methods</h2><ul>{methods}</ul>
<h2>Attackers and their training budgets</h2>{attackers_html(data.attackers)}
<h2>Model versions</h2><ul>{"".join(f"<li>{html.escape(v)}</li>" for v in versions) or "<li>—</li>"}</ul>
<h2>Not checked</h2><ul id="unchecked">{unchecked_html}</ul>
</body></html>
"""


def _ts(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def report_json(data: ReportData) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    return {
        "overall": data.overall,
        "cameras": data.cameras,
        "ground_truth_available": data.ground_truth_available,
        "verdicts": [v.as_dict() for v in data.verdicts],
        "alerts": [MessageToDict(a) for a in data.alerts],
        "records": [MessageToDict(r) for r in data.records],
        "methods": ATTACK_METHODS,
        "attackers": data.attackers,
        "model_versions": sorted({r.model_version for r in data.records if r.model_version}),
        "not_checked": [v.as_dict() for v in data.verdicts if v.status == "not checked"],
    }


def write_report(data: ReportData, out_dir: str | Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    html_path, json_path = out / "report.html", out / "report.json"
    html_path.write_text(render_html(data))
    json_path.write_text(json.dumps(report_json(data), indent=2, allow_nan=False, default=str))
    return html_path, json_path
