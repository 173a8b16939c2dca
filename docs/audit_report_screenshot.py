"""Make docs/audit_report.png: a real adversary run on the live world, its report, a chromium screenshot.

Two cameras of the live world write the audit tap into an embedded Redis: ``cam3`` through a deliberately
broken anonymizer (the identity: anonymized == raw voxels) and ``cam4`` through the anonymizer given with
``--anonymizer`` (a checkpoint; default: the shipped / random-init bundle). The adversary node attacks
both after every segment of stream (so the report has trends), then ``anonreid audit report`` writes
the HTML and Debian's chromium (Playwright, never a downloaded browser) screenshots it.

    .venv/bin/python docs/audit_report_screenshot.py --attacker .build/models/runs/cpu --out /tmp/audit
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from anonreid.models.bundle import ModelBundle, load_model_bundle
from anonreid.models.checkpoint import load_checkpoint
from anonreid.nodes.adversary.node import AdversaryNode
from anonreid.nodes.camera import CameraNode
from anonreid.nodes.sources import SourceSpec, open_source
from anonreid.orchestration.config import AdversaryConfig, CameraConfig, RedisConfig, WorldConfig
from anonreid.orchestration.redis_service import RedisService

REPO = Path(__file__).resolve().parents[1]


def stream(client, camera: str, bundle: ModelBundle, t0_s: float, seconds: float) -> None:
    src = open_source(SourceSpec(kind="live", camera_id=camera, realtime=False, start_us=int(t0_s * 1e6),
                                 end_us=int((t0_s + seconds) * 1e6), world=WorldConfig().model_dump()))
    node = CameraNode(camera, src.sensor, CameraConfig(audit_every_s=1.0, torch_threads=1, metrics_port=0),
                      redis=client, models=bundle, ground_truth=src.ground_truth, window_t0_us=src.window_t0_us)
    node.run(src.packets(), backpressure=True)
    node.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attacker", required=True, help="run directory with the attacker's checkpoints")
    ap.add_argument("--anonymizer", default="", help="anonymizer checkpoint (without suffix) for cam4")
    ap.add_argument("--policy", default="", help="privacy policy YAML (default: the shipped one)")
    ap.add_argument("--segments", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "audit-report"))
    ap.add_argument("--png", default=str(REPO / "docs" / "audit_report.png"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    base = load_model_bundle(None)
    if args.anonymizer:
        an = load_checkpoint(args.anonymizer)
        trained = ModelBundle(an.model.eval(), base.reid, f"{an.metadata.get('preset', 'custom')}-anonymizer", base.crop_hw)
    else:
        trained = base
    broken = ModelBundle(torch.nn.Identity(), base.reid, "identity-mapping (no anonymization)", base.crop_hw)
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisService(RedisConfig(embedded_dir=tmp)).start()
        try:
            client = redis.client()
            cfg = AdversaryConfig(cameras=["cam4", "cam3"], min_samples=3, model_dir=args.attacker,
                                  policy=args.policy, adaptive_steps=3, adaptive_every_s=1.0, adaptive_budget_s=60)
            adversary = AdversaryNode(cfg, client)
            for k in range(args.segments):
                t0 = k * args.seconds
                stream(client, "cam3", broken, t0, args.seconds)
                stream(client, "cam4", trained, t0 + 6.5, args.seconds)  # person 024 walks through cam4 from 6.2 s
                adversary.poll()
                records = adversary.attack_round()
                print(f"segment {k}: {len(records)} scores", file=sys.stderr)
            cmd = [str(REPO / ".venv/bin/anonreid"), "audit", "report", "--out", args.out, "--redis-url", redis.url]
            if args.policy:
                cmd += ["--set", f"adversary.policy={args.policy}"]
            cmd += ["--set", 'adversary.cameras=["cam4","cam3"]']
            subprocess.run(cmd, check=True)
        finally:
            redis.stop()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto((Path(args.out) / "report.html").as_uri())
        loaded = page.eval_on_selector_all("img", "els => els.every(e => e.complete && e.naturalWidth > 0)")
        assert loaded, "an image of the report did not load"
        page.screenshot(path=args.png, full_page=True)
        browser.close()
    print(args.png, np.round(Path(args.png).stat().st_size / 1e3, 1), "kB")


if __name__ == "__main__":
    main()
