"""``anonreid evaluate --dataset paired-h5``: the reconstruction attacks judged on a user's own paired
events + frames (issue #18: attacks on real data).

A privacy auditor with real recordings and aligned frames (:mod:`anonreid.events.paired_h5_dataset`)
asks what an attacker recovers of the real scene from the anonymized real events. The run is either
``anonreid train --dataset paired-h5 --anonymizer A`` (E_rec and the attacks trained on the auditor's
recordings against the frozen E_an ``A``) or any world run (its world-trained attacks, judged on real
data: the sim-to-real attacker).

Test windows: when the run trained on these recordings (a checkpoint records their fingerprint), the
run config's validation split (``data.val_identities`` held-out recordings, else the last
:data:`~anonreid.events.paired_h5_dataset.VAL_FRACTION` of each), which its attacks never trained on;
otherwise every usable window. Clips are built as training builds them, at most ``clips_per_pass`` per
recording part, evenly spaced.

Every view of :func:`~anonreid.models.evaluation.attacks.attacker_views` the run holds is scored against
the real frames: ``raw`` (E_rec on the raw events: what an attacker gets without the anonymizer, the
baseline, not an attack), ``anonymized`` (the frozen E_rec on E_an's output) and each trained attack
(adaptive, fine-tuned, inversion, linear inverse). Scores are full-frame SSIM and PSNR (recordings carry
no person boxes), each with a 95% cluster-bootstrap interval whose unit is one second of one recording
(:data:`BLOCK_WINDOWS` windows: neighbouring windows are not independent), beside the flat-grey floor
(what an attacker scores without any appearance). The check of an attack is its SSIM's upper bound
against that floor (:func:`~anonreid.models.evaluation.report.check_state`): "holds" when the attacker
recovers no more of the frame than a flat grey does. ``recovered`` is the share of the raw attack's
gain over the floor the attack keeps: (SSIM - floor) / (SSIM raw - floor). Full-frame SSIM is dominated
by the static background, so a check that holds here is weaker than the world's person-region check.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from anonreid.models.evaluation.results import ReconstructionScore, jsonable

#: the bootstrap's unit: one second of 33.3 ms windows of one recording
BLOCK_WINDOWS = 30


@dataclass(frozen=True)
class PairedAttackRow:
    """One view's scores against the real frames, with its check (None for the raw baseline)."""

    view: str
    score: ReconstructionScore
    recovered: float | None  # (SSIM - floor) / (SSIM of raw - floor); None for raw or when raw is at the floor
    state: str | None
    budget: dict[str, Any] | None  # the attack's training budget and the 3x rule, from its checkpoint


@dataclass
class PairedResults:
    command: str
    run: str
    root: str
    fingerprint: str
    test_split: str
    clips: int
    recordings: list[str]
    clusters: int
    clip_len: int
    rows: list[PairedAttackRow] = field(default_factory=list)
    trained_against: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0
    figures: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in (f.name for f in fields(self)) if k != "rows"}
        out["rows"] = [{"view": r.view, "score": r.score.as_dict(), "recovered": r.recovered, "state": r.state,
                        "budget": r.budget} for r in self.rows]
        return dict(jsonable(out))


def _blocks(test_set: Any, clips: Any, data_cfg: Any, clips_per_pass: int) -> np.ndarray:
    """The bootstrap cluster of every clip: its recording and the second its last window falls in."""
    from anonreid.models.data import _select_clips

    cfg = data_cfg.model_copy(update={"max_clips_per_pass": clips_per_pass})
    out = np.empty(len(clips), object)
    for pass_idx in np.unique(clips.passes):
        info = test_set.passes[int(pass_idx)]
        name, start, end = test_set.segments[info.pass_id]
        usable = test_set.recordings[name].usable[start:end]
        w, h = test_set.sensor.width, test_set.sensor.height
        boxes = np.where(usable[:, None], np.array([[0, 0, w, h]], np.float32), np.nan)
        starts = _select_clips(boxes, cfg)
        members = np.flatnonzero(clips.passes == pass_idx)
        if len(starts) != len(members):
            raise RuntimeError(f"{info.pass_id}: {len(starts)} clip starts recomputed, {len(members)} clips built")
        for m, k in zip(members, starts, strict=True):
            out[m] = f"{name}@{(start + k + cfg.clip_len - 1) // BLOCK_WINDOWS}"
    return out


def _budget(meta: dict[str, dict[str, Any]], view: str) -> dict[str, Any] | None:
    """The training budget of the attack behind ``view`` and the 3x rule's verdict, from its checkpoint."""
    from anonreid.models.evaluation.attacks import ATTACK_VIEWS

    m = meta.get(ATTACK_VIEWS.get(view, ""))
    if m is None:
        return None
    return {"budget": m.get("budget"), "rule": m.get("budget_rule"), "trained_on": m.get("trained_on"),
            "data_fingerprint": m.get("data_fingerprint")}


def evaluate_paired(
    run_dir: Path, out_dir: Path, root: Path, time_unit: str | None = None, sensor: str = "",
    clips_per_pass: int = 8, progress: bool = True, command: str = "", seed: int = 0,
) -> PairedResults:
    """Score every reconstruction attack of ``run_dir`` on the paired recordings at ``root`` (module
    docstring); writes ``results.json``, ``results.md`` and ``image_grid.png`` to ``out_dir``."""
    import torch

    from anonreid.events.paired_h5_dataset import open_paired_h5_dataset
    from anonreid.events.types import SensorSize
    from anonreid.models.checkpoint import load_checkpoint
    from anonreid.models.config import load_train_config
    from anonreid.models.data import build_clips
    from anonreid.models.engine import resolve_device, seed_everything
    from anonreid.models.evaluation.attacks import attacker_views, load_attacker_side, reconstruction_attack
    from anonreid.models.evaluation.protocol import checkpoint_meta
    from anonreid.models.evaluation.report import check_state

    t0 = time.perf_counter()
    cfg = load_train_config(run_dir / "config.yaml")
    anon_path = run_dir / "checkpoints" / "anonymizer"
    if not anon_path.with_suffix(".json").exists():
        raise FileNotFoundError(f"{anon_path}.json: the run has no anonymizer to attack (train one with --stage joint "
                                "on a world, or name one with `anonreid train --dataset paired-h5 --anonymizer`)")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    size = SensorSize.parse(sensor) if sensor else None
    ds = open_paired_h5_dataset(root, time_unit, size, cfg.data.window_us)
    meta = checkpoint_meta(run_dir)
    if ds.fingerprint in {str(m.get("data_fingerprint")) for m in meta.values()}:  # the run trained on these recordings: its validation split
        n_val = cfg.data.val_identities
        if n_val:
            ds = open_paired_h5_dataset(root, ds.time_unit, ds.sensor, cfg.data.window_us, n_val)
        test_set, part = ds.split("val"), "val"
        split = (f"the {n_val} held-out recordings" if n_val else "the last 20% of every recording's usable "
                 "windows") + " (the run config's validation split: the run trained on these recordings)"
    else:
        train, val = ds.split("train"), ds.split("val")
        test_set, part = dataclasses.replace(train, passes=train.passes + val.passes), "all"
        split = "every usable window (the run never trained on these recordings)"
    # the cache key tells the two parts apart: build_clips keys by identities, which both hold when no
    # recording is held out
    clips = build_clips(test_set, test_set.identities(), cfg.data, out_dir / "cache", f"{ds.fingerprint}:{part}",
                        max_clips_per_pass=clips_per_pass, progress=progress)
    if not len(clips):
        raise ValueError(f"{root}: no test clip in {split}: longer recordings, or a smaller data.clip_len")
    groups = _blocks(test_set, clips, cfg.data, clips_per_pass)
    anonymizer = load_checkpoint(anon_path, device=device).model.eval()
    attacker = load_attacker_side(run_dir, device)
    seed_everything(seed)  # a stochastic anonymizer draws its noise from torch's RNG
    views, _ = attacker_views(clips.voxels, attacker, anonymizer)
    reference = np.asarray(clips.frames, np.float32) / 255.0
    scores = {v: reconstruction_attack(pred, reference, groups, seed) for v, pred in views.items()}
    raw = scores["raw"]
    rows = []
    for view, sc in scores.items():
        gain = raw.ssim.value - sc.ssim_floor
        recovered = (sc.ssim.value - sc.ssim_floor) / gain if view != "raw" and gain > 1e-6 else None
        state = None if view == "raw" else check_state("SSIM", sc.ssim, sc.ssim_floor)
        rows.append(PairedAttackRow(view, sc, recovered, state, _budget(meta, view)))
    from anonreid.models.budget import trained_against

    against = [b.as_dict() for b in trained_against(meta["anonymizer"])]
    res = PairedResults(command, str(run_dir), str(root), ds.fingerprint, split, len(clips),
                        sorted(set(test_set.identities())), len(set(groups.tolist())), cfg.data.clip_len, rows, against)
    out_dir.mkdir(parents=True, exist_ok=True)
    from anonreid.models.evaluation.report import image_grid

    ids = np.asarray([clips.identities[int(i)] for i in clips.labels])
    res.figures = [image_grid([("reference", reference), *views.items()], ids, np.asarray(["real"] * len(ids)),
                              out_dir / "image_grid.png", label="recording")]
    res.wall_s = round(time.perf_counter() - t0, 1)
    (out_dir / "results.json").write_text(json.dumps(res.to_json(), indent=1) + "\n")
    (out_dir / "results.md").write_text(paired_markdown(res))
    return res


def paired_markdown(res: PairedResults) -> str:
    from anonreid.models.evaluation.report import STATE_WORDS, VIEW_TITLES, est, table

    rows = []
    for r in res.rows:
        b = r.budget or {}
        budget = (f"{b['budget']['total']} clips ({'meets' if (b.get('rule') or {}).get('ok') else 'UNDER'} the 3x rule)"
                  if b.get("budget") else ("untrained" if r.view in ("raw", "anonymized") else "closed form"))
        rows.append([VIEW_TITLES.get(r.view, r.view), est(r.score.ssim), f"{r.score.ssim_floor:.3f}",
                     est(r.score.psnr, 2), f"{r.score.psnr_floor:.2f}",
                     "-" if r.recovered is None else f"{100 * r.recovered:.0f} %", budget,
                     "baseline (no anonymizer)" if r.state is None else STATE_WORDS[r.state]])
    against = ", ".join(f"{b['name']} ({b['kind']}, {b['total']} samples)" for b in res.trained_against)
    return "\n".join([
        "# Attacks on real paired events and frames", "",
        "Command:", "", "```", res.command, "```", "",
        f"Run `{res.run}`; recordings `{res.root}` ({res.fingerprint}). Test windows: {res.test_split}: "
        f"{res.clips} clips of {res.clip_len} windows from {len(res.recordings)} recordings, "
        f"{res.clusters} one-second blocks. {res.wall_s} s.", "",
        "Full-frame SSIM and PSNR against the real frames, 95% cluster-bootstrap intervals over one-second blocks "
        "of each recording; floor = a flat grey at each frame's mean. The check: an attack's SSIM upper bound at "
        "most the floor (\"holds\": it recovers no more than a flat grey). Recovered = (SSIM - floor) / "
        "(SSIM of E_rec(raw) - floor). Recordings carry no person boxes, so these are whole-frame scores, "
        "dominated by the static background; the world's person-region checks are the stricter ones.", "",
        f"Attackers E_an was trained against: {against or 'not recorded'}.", "",
        table(["view", "SSIM", "floor", "PSNR", "floor", "recovered", "budget", "check"], rows), "",
        "![every view](image_grid.png)", "",
    ])
