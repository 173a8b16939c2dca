"""ReId rank-1 of raw-event ReId checkpoints on a world's test people, as `anonreid evaluate`'s Table 4
scores it (the same test clips, two per pass; the same `reid_scores`), without the attacks: Market-1501,
and on a world filmed on several days (`world.outfit_days`) also across outfits (the cloth-changing
protocol). A paired comparison of the checkpoints over the same queries closes the output.

usage: python docs/results/outfits/reid_eval.py WORLD OUT.json LABEL=CHECKPOINT [LABEL=CHECKPOINT ...]
(CHECKPOINT without its .safetensors / .json suffix, e.g. models/weights/default/reid_raw)"""

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from anonreid.models.checkpoint import load_checkpoint
from anonreid.models.config import load_train_config
from anonreid.models.evaluation.attacks import one_per_identity_camera
from anonreid.models.evaluation.metrics import cmc_map, cosine_distance
from anonreid.models.evaluation.tables import reid_embeddings, reid_scores
from anonreid.models.evaluation.testset import open_test_set

torch.set_num_threads(2)
world, out = Path(sys.argv[1]), Path(sys.argv[2])
checkpoints = dict(a.split("=", 1) for a in sys.argv[3:])
data_cfg = load_train_config("minmax").data  # the data section of every shipped and candidate run
test = open_test_set("world", world, None, data_cfg, Path(tempfile.gettempdir()) / "anonreid-reid-eval", 2, False)
boxes, last = np.asarray(test.clips.boxes), test.clips.voxels[:, -1]
protocols = {"market": None, **({"cloth_changing": test.days} if test.days is not None else {})}
res: dict = {"world": str(world), "clips": len(test.ids), "identities": len(set(test.ids.tolist())), "models": {}}
hits: dict = {}
for label, ck in checkpoints.items():
    t0 = time.time()
    model = load_checkpoint(Path(ck), device=torch.device("cpu")).model.eval()
    emb = reid_embeddings(model, last, boxes, (data_cfg.crop_hw[0], data_cfg.crop_hw[1]))
    row: dict = {"checkpoint": ck, "flip_test": bool(getattr(model, "flip_test", False))}
    found = np.flatnonzero(np.isfinite(emb).all(1))
    q = found[one_per_identity_camera(test.ids[found], test.cams[found])]
    for name, days in protocols.items():
        score = reid_scores(emb, test.ids, test.cams, 0, days=days)
        row[name] = score.as_dict()
        r = cmc_map(cosine_distance(emb[q], emb[found]), test.ids[q], test.ids[found], test.cams[q], test.cams[found],
                    q_outfits=None if days is None else days[q], g_outfits=None if days is None else days[found])
        hits[label, name] = (q[r.valid_query_index], r.rank1_hit)
        print(f"{label} {name}: rank-1 {100 * score.rank1.value:.1f} [{100 * score.rank1.ci_low:.1f}, "
              f"{100 * score.rank1.ci_high:.1f}], chance {100 * score.chance['rank1']:.2f}, mAP {100 * score.mAP.value:.1f}, "
              f"{score.num_queries - score.num_queries_without_match} queries with a match", flush=True)
    row["seconds"] = round(time.time() - t0, 1)
    res["models"][label] = row
labels = list(checkpoints)
for name in protocols:
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            (qa, ha), (qb, hb) = hits[a, name], hits[b, name]
            _, ia, ib = np.intersect1d(qa, qb, return_indices=True)
            diff = ha[ia] - hb[ib]
            res.setdefault("paired", {})[f"{name}: {a} - {b}"] = {
                "difference": float(diff.mean()), "queries": len(ia), "hit_only_by_first": int((diff > 0).sum()),
                "hit_only_by_second": int((diff < 0).sum())}
            print(f"{name}: {a} - {b}: {100 * diff.mean():+.1f} points over {len(ia)} queries "
                  f"({int((diff > 0).sum())} hit only by the first, {int((diff < 0).sum())} only by the second)")
out.write_text(json.dumps(res, indent=1) + "\n")
