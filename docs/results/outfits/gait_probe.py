"""A probe, not a project stage: does the synthetic world's gait survive into events enough to
re-identify people across outfits? (issue #16, 32nd session; docs/results/outfits/README.md)

Each pass becomes a sequence of low-resolution event-count silhouettes: per 33.3 ms window, the events
inside the person's ground-truth box counted per pixel (both polarities), area-resized to 32 x 16 and
log-scaled. At 32 x 16 clothing texture is mostly averaged away; body shape, limb swing and their rhythm
stay. A small temporal network (a per-window CNN, then temporal convolutions over 24 windows = 0.8 s,
mean and max pooled to 256-d) is trained with identity cross-entropy + batch-hard triplet on the
training people of a world filmed on several days (each pass in one of its person's outfits), then
scores the test people of another world:

  * across outfits (the cloth-changing protocol: a query pass's matches are its person's passes of other
    days and cameras) on a test world filmed on several days;
  * the same day (Market-1501: other cameras) on the test world the project evaluates on.

Each pass's embedding is the mean over windows of 24 at a stride of 4 across its visible span.

usage:
  python docs/results/outfits/gait_probe.py extract WORLD OUT.npz
  python docs/results/outfits/gait_probe.py train TRAIN.npz MODEL.pt [--steps N] [--window W]
  python docs/results/outfits/gait_probe.py score MODEL.pt TEST.npz OUT.json
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HW = (32, 16)


def extract(world: str, out: str) -> None:
    from anonreid.events.world import WorldDataset

    ds = WorldDataset(world)
    days = ds.pass_days()
    seqs, meta = [], []
    t0 = time.time()
    for i, p in enumerate(ds.passes):
        d = ds.load_pass(p.pass_id)
        ev, window = d.events, ds.window_us
        starts = np.searchsorted(ev["t"], d.frame_ts)
        ends = np.searchsorted(ev["t"], d.frame_ts + window)
        frames = []
        for k in range(len(d.frame_ts)):
            box = d.boxes[k]
            if not np.isfinite(box).all():
                continue
            x0, y0 = int(np.floor(max(box[0], 0))), int(np.floor(max(box[1], 0)))
            x1, y1 = int(np.ceil(min(box[2], d.sensor.width))), int(np.ceil(min(box[3], d.sensor.height)))
            if x1 - x0 < 4 or y1 - y0 < 8:
                continue
            e = ev[starts[k]:ends[k]]
            x, y = e["x"].astype(np.int64), e["y"].astype(np.int64)
            inside = (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
            counts = np.bincount((y[inside] - y0) * (x1 - x0) + (x[inside] - x0),
                                 minlength=(y1 - y0) * (x1 - x0)).reshape(y1 - y0, x1 - x0).astype(np.float32)
            small = F.interpolate(torch.from_numpy(counts)[None, None], size=HW, mode="area")[0, 0]
            frames.append(torch.log1p(small).numpy())
        if len(frames) < 8:
            continue
        seqs.append(np.stack(frames).astype(np.float16))
        meta.append((p.identity, p.camera, int(days[i]), p.split))
        if i % 200 == 0:
            print(f"{i}/{len(ds.passes)} passes, {time.time() - t0:.0f} s", flush=True)
    lengths = np.array([len(s) for s in seqs])
    np.savez(out, frames=np.concatenate(seqs), lengths=lengths, identity=np.array([m[0] for m in meta]),
             camera=np.array([m[1] for m in meta]), day=np.array([m[2] for m in meta]),
             split=np.array([m[3] for m in meta]))
    print(f"{len(seqs)} passes, windows per pass {lengths.min()}-{lengths.max()} (median {np.median(lengths):.0f})")


class GaitNet(nn.Module):
    def __init__(self, classes: int, dim: int = 256) -> None:
        super().__init__()
        self.frame = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        )  # 32 x 16 -> 64 x 4 x 2
        self.proj = nn.Linear(64 * 4 * 2, 128)
        self.time = nn.Sequential(nn.Conv1d(128, 128, 5, padding=2), nn.BatchNorm1d(128), nn.ReLU(),
                                  nn.Conv1d(128, 128, 5, padding=4, dilation=2), nn.BatchNorm1d(128), nn.ReLU())
        self.embed = nn.Linear(256, dim)
        self.bnneck = nn.BatchNorm1d(dim)
        self.classifier = nn.Linear(dim, classes, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t = x.shape[:2]
        f = self.proj(self.frame(x.flatten(0, 1).unsqueeze(1)).flatten(1)).view(b, t, -1).transpose(1, 2)
        h = self.time(f)
        emb = self.embed(torch.cat([h.mean(2), h.amax(2)], 1))
        return emb, self.classifier(self.bnneck(emb))


def _windows(frames: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, w: int, rng: np.random.Generator,
             idx: np.ndarray) -> torch.Tensor:
    out = np.empty((len(idx), w, *HW), np.float32)
    for j, i in enumerate(idx):
        n = lengths[i]
        s = rng.integers(0, n - w + 1) if n >= w else 0
        chunk = frames[offsets[i] + s: offsets[i] + min(n, s + w)]
        out[j, : len(chunk)] = chunk
        out[j, len(chunk):] = chunk[-1] if len(chunk) < w else 0
    return torch.from_numpy(out)


def _load(path: str) -> dict:
    d = dict(np.load(path))
    d["offsets"] = np.concatenate([[0], np.cumsum(d["lengths"])[:-1]])
    return d


def train(data: str, out: str, steps: int = 1500, w: int = 24) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    d = _load(data)
    keep = d["split"] == "train"
    ids = sorted(set(d["identity"][keep].tolist()))
    label = np.array([ids.index(i) if i in ids else -1 for i in d["identity"]])
    train_idx = np.flatnonzero(keep)
    by_id = {c: train_idx[label[train_idx] == c] for c in range(len(ids))}
    model = GaitNet(len(ids))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps, pct_start=0.05)
    rng = np.random.default_rng(0)
    frames = d["frames"].astype(np.float32)
    t0 = time.time()
    for step in range(steps):
        people = rng.choice(len(ids), min(16, len(ids)), replace=False)
        idx = np.concatenate([rng.choice(by_id[c], 4, replace=len(by_id[c]) < 4) for c in people])
        x = _windows(frames, d["offsets"], d["lengths"], w, rng, idx)
        y = torch.from_numpy(label[idx])
        emb, logits = model(x)
        ce = F.cross_entropy(logits, y, label_smoothing=0.1)
        e = F.normalize(emb, dim=1)
        dist = 1 - e @ e.t()
        same = y[:, None] == y[None]
        hard_pos = (dist * same).amax(1)
        hard_neg = (dist + same.float() * 4).amin(1)
        tri = F.relu(hard_pos - hard_neg + 0.3).mean()
        loss = ce + tri
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"step {step} ce {ce.item():.3f} triplet {tri.item():.3f} {time.time() - t0:.0f} s", flush=True)
    torch.save({"state": model.state_dict(), "classes": len(ids), "window": w, "steps": steps}, out)


@torch.no_grad()
def embed_passes(model: GaitNet, d: dict, w: int) -> np.ndarray:
    model.eval()
    frames = d["frames"].astype(np.float32)
    out = []
    for i in range(len(d["lengths"])):
        n, o = d["lengths"][i], d["offsets"][i]
        starts = list(range(0, max(1, n - w + 1), 4))
        x = torch.from_numpy(np.stack([np.pad(frames[o + s: o + min(n, s + w)], ((0, max(0, w - (min(n, s + w) - s))), (0, 0), (0, 0)),
                                              mode="edge") for s in starts]))
        emb, _ = model(x)
        out.append(F.normalize(F.normalize(emb, dim=1).mean(0), dim=0).numpy())
    return np.stack(out)


def score(model_path: str, data: str, out: str) -> None:
    from anonreid.models.evaluation.attacks import retrieval_scores

    ck = torch.load(model_path, weights_only=False)
    model = GaitNet(ck["classes"])
    model.load_state_dict(ck["state"])
    d = _load(data)
    test = np.flatnonzero(d["split"] == "test")
    emb = embed_passes(model, {k: (v[test] if k in ("identity", "camera", "day", "split") else v) for k, v in d.items()}
                       | {"lengths": d["lengths"][test], "offsets": d["offsets"][test]}, ck["window"])
    ids, cams, days = d["identity"][test], d["camera"][test], d["day"][test]
    res = {"model": model_path, "data": data, "passes": len(test), "identities": len(set(ids.tolist())),
           "window": ck["window"], "steps": ck["steps"]}
    market = retrieval_scores(emb, ids, cams, emb, ids, cams)
    res["market"] = market.as_dict()
    line = f"same day (Market, other cameras): rank-1 {100 * market.rank1.value:.1f} [{100 * market.rank1.ci_low:.1f}, " \
           f"{100 * market.rank1.ci_high:.1f}] chance {100 * market.chance['rank1']:.2f} ({market.num_queries - market.num_queries_without_match} queries)"
    if len(set(days.tolist())) > 1:
        cc = retrieval_scores(emb, ids, cams, emb, ids, cams, outfits=(days, days))
        res["cloth_changing"] = cc.as_dict()
        line += f"; across outfits: rank-1 {100 * cc.rank1.value:.1f} [{100 * cc.rank1.ci_low:.1f}, " \
                f"{100 * cc.rank1.ci_high:.1f}] chance {100 * cc.chance['rank1']:.2f} " \
                f"({cc.num_queries - cc.num_queries_without_match} queries)"
    print(line)
    with open(out, "w") as fh:
        fh.write(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "extract":
        extract(*args)
    elif cmd == "train":
        steps = int(args[args.index("--steps") + 1]) if "--steps" in args else 1500
        w = int(args[args.index("--window") + 1]) if "--window" in args else 24
        train(args[0], args[1], steps, w)
    elif cmd == "score":
        score(*args)
    else:
        raise SystemExit(__doc__)
