"""A probe, not a project stage: at which sensor size can any attacker built here identify a person in
the world's *clean* camera frames from a photo of **another day** (another outfit)? (issue #16, 33rd
session; docs/results/biometric/README.md)

The privacy evaluation's biometric checks (`identity.enrollment_day=1`) read "not testable" on the
320 x 240 worlds: without any anonymizer, the attacker's nets did not identify people across days from
clean reference frames (docs/results/xl_shipped_d1). Before a larger evaluation world is simulated, this
probe measures that positive control alone, cheaply: no events, no anonymizer, only the intensity frames
the world's reference camera would give.

For each person of a world config (its people, cameras and walks as `anonreid simulate` draws them) and
each of the four cameras, on each of ``days`` days (day ``d``: ``Person.on_another_day(d)``, its own walk),
three frames are rendered around the middle of a pass (`CameraView.render_full`, the same renderer as
the dataset's reference frames) and cropped at the ground-truth box (person crop, and the face box of
`anonreid evaluate`'s face attack); every person's studio photo of each day is rendered too.

Attacker: the evaluation's own embedding nets (`train_attacker_net`: ResNet-18, label-smoothing CE +
batch-hard triplet, P x K batches, augmentations), trained on the **training people's frames and photos
of every day** (so it can learn what does not change with the outfit), with a budget of ``--steps``.
Scored on the test people:

  * photo -> frames: the day-1 photo of each test person against every test person's day-0 frames
    (the evaluation's `enrollment photo -> clean reference frames` control);
  * frames -> photos: each day-0 frame against the test people's day-1 photos;
  * frames -> frames across days: a day-0 frame against the other cameras' day-1 frames (what an event
    ReId across outfits could at best reach from these cameras).

Rank-1 with exact 95 % Clopper-Pearson intervals (frame queries: effective size over people, the
evaluation's design effect); chance is 1 / number of test people.

usage:
  python docs/results/biometric/probe.py render OUT.npz [--resolution 640x480] [--identities 380]
      [--train 280] [--seed 7] [--days 4]
  python docs/results/biometric/probe.py score CROPS.npz OUT.json [--steps 1000] [--kind person|face]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

PERSON_HW = (128, 64)
FACE_HW = (32, 32)
FRACTIONS = (0.4, 0.5, 0.6)  # of the pass: the person is near the lane's centre, in full view


def render(out: str, resolution: str, identities: int, train: int, seed: int, days: int) -> None:
    from anonreid.events.world.build import build_world
    from anonreid.events.world.render import render_enrollment
    from anonreid.events.world.scene import CameraView, to_uint8
    from anonreid.events.world.schedule import pass_walk
    from anonreid.models.data import face_boxes
    from anonreid.models.evaluation.attacks import image_crops, photo_person_box
    from anonreid.orchestration.config import WorldConfig

    torch.set_num_threads(1)
    cfg = WorldConfig(resolution=resolution, identities=identities, train_identities=train, seed=seed)
    world = build_world(cfg)
    duration = int(cfg.pass_seconds * 1e6)
    person_crops, face_crops, meta = [], [], []  # meta: person, camera (-1 = photo), day, split (1 = test)
    t0 = time.time()
    for n, base in enumerate(world.people):
        for day in range(days):
            person = base.on_another_day(day)
            photo = render_enrollment(person)
            box = photo_person_box(photo)[None].astype(np.float32)
            person_crops.append(image_crops(photo[None], box, PERSON_HW))
            face_crops.append(image_crops(photo[None], face_boxes(box, person.head_ratio), FACE_HW))
            meta.append((n, -1, day, int(person.split == "test")))
            for c, cam in enumerate(world.cameras):
                rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB10, base.index, c, day]))
                walk = pass_walk(person, cam, duration, rng)
                view = CameraView(cam, lambda a, b, w=walk: [w])
                for f in FRACTIONS:
                    t = f * duration
                    b = view.boxes([walk], t - 1, t + 1)[0]
                    if not np.isfinite(b).all():
                        continue
                    frame = to_uint8(view.render_full(t))[None]
                    person_crops.append(image_crops(frame, b[None], PERSON_HW))
                    face_crops.append(image_crops(frame, face_boxes(b[None], person.head_ratio), FACE_HW))
                    meta.append((n, c, day, int(person.split == "test")))
        if n % 20 == 0:
            print(f"{n + 1}/{len(world.people)} people, {time.time() - t0:.0f} s", flush=True)
    to_u8 = lambda x: (torch.cat(x)[:, 0].numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)  # noqa: E731
    np.savez_compressed(out, person=to_u8(person_crops), face=to_u8(face_crops), meta=np.array(meta, np.int32),
                        resolution=resolution, seed=seed, days=days, render_s=time.time() - t0)
    print(f"wrote {out}: {len(meta)} crops in {time.time() - t0:.0f} s")


def _rank1(q: np.ndarray, g: np.ndarray, q_id: np.ndarray, g_id: np.ndarray) -> np.ndarray:
    """Per query (L2-normalised embeddings): is the nearest gallery item (cosine) of its own person?"""
    return g_id[np.argmax(q @ g.T, axis=1)] == q_id


def _estimate(hits: np.ndarray, people: np.ndarray) -> dict[str, float]:
    from anonreid.models.evaluation.intervals import proportion_ci

    e = proportion_ci(hits.astype(float), people)
    return {"rank1": round(100 * e.value, 2), "ci95": [round(100 * e.ci_low, 2), round(100 * e.ci_high, 2)],
            "queries": len(hits), "people": len(np.unique(people)), "n_eff": round(float(e.n_eff), 1)}


def score(crops_path: str, out: str, steps: int, kind: str) -> None:
    from anonreid.models.evaluation.attacks import AttackerNetCfg, embed, train_attacker_net

    torch.set_num_threads(1)
    z = np.load(crops_path)
    x = torch.from_numpy(z[kind].astype(np.float32) / 255.0)[:, None]
    meta = z["meta"]
    person, cam, day, test = meta.T
    hw = PERSON_HW if kind == "person" else FACE_HW
    tr = test == 0
    labels = np.unique(person[tr], return_inverse=True)[1]
    cfg = AttackerNetCfg(name=f"probe_{kind}", crop_hw=hw, steps=steps, model="reid_resnet18", embed_dim=128,
                         p=16, k=4, lr=5e-4, warmup=20, seed=0, augment=True)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        net = train_attacker_net(x[tr], labels, cfg, Path(tmp), torch.device("cpu"))
    train_s = time.time() - t0
    net.eval()
    emb = embed(net, x, batch=256)  # L2-normalised
    te = test == 1
    photo1 = te & (cam == -1) & (day == 1)
    frames0 = te & (cam >= 0) & (day == 0)
    frames1 = te & (cam >= 0) & (day == 1)
    res: dict[str, object] = {"kind": kind, "crop_hw": list(hw), "resolution": str(z["resolution"]),
                              "steps": steps, "batch": cfg.p * cfg.k, "train_s": round(train_s, 1),
                              "train_people": len(np.unique(person[tr])),
                              "train_crops": int(tr.sum()), "days": int(z["days"])}
    n_test = len(np.unique(person[te]))
    res["chance"] = round(100 / n_test, 2)
    hits = _rank1(emb[photo1], emb[frames0], person[photo1], person[frames0])
    res["photo_day1_to_frames_day0"] = _estimate(hits, person[photo1])
    hits = _rank1(emb[frames0], emb[photo1], person[frames0], person[photo1])
    res["frames_day0_to_photos_day1"] = _estimate(hits, person[frames0])
    # frame -> frames of another day and another camera
    qi, gi = np.flatnonzero(frames0), np.flatnonzero(frames1)
    sim = emb[qi] @ emb[gi].T
    sim[cam[qi][:, None] == cam[gi][None, :]] = -np.inf
    hits = person[gi][np.argmax(sim, axis=1)] == person[qi]
    res["frames_day0_to_frames_day1_other_camera"] = _estimate(hits, person[qi])
    Path(out).write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render")
    r.add_argument("out")
    r.add_argument("--resolution", default="640x480")
    r.add_argument("--identities", type=int, default=380)
    r.add_argument("--train", type=int, default=280)
    r.add_argument("--seed", type=int, default=7)
    r.add_argument("--days", type=int, default=4)
    s = sub.add_parser("score")
    s.add_argument("crops")
    s.add_argument("out")
    s.add_argument("--steps", type=int, default=1000)
    s.add_argument("--kind", choices=["person", "face"], default="person")
    a = ap.parse_args(argv)
    if a.cmd == "render":
        render(a.out, a.resolution, a.identities, a.train, a.seed, a.days)
    else:
        score(a.crops, a.out, a.steps, a.kind)


if __name__ == "__main__":
    main(sys.argv[1:])
