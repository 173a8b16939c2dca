"""Association variants replayed on saved recordings (docs/BENCHMARKS.md, "The hindsight reference at one
fixed cut", 47th session): a one-off harness, not part of the product.

    python docs/association_variants.py RECDIR VARIANT [gallery.KEY=VALUE ...]
    python docs/association_variants.py RECDIR offline

RECDIR holds the twelve recordings of ``anonreid bench association --save-recording``, named f0.rec-f7.rec
(fixed sensors, world seeds 0-7) and d0.rec-d3.rec (``world.realism.enabled=true``, seeds 0-3), made with
the shipped models. Each is replayed at the configured settings as the bench replays it, with the gallery
patched by VARIANT:

- ``base``: the gallery as it is;
- ``avg``: the merge pass scores two identities by average linkage (the mean similarity of their
  tracklets' prototypes) instead of the cosine of their summed prototypes;
- ``split``: after each merge pass, an identity's tracklet whose mean similarity to its other tracklets is
  under ``SPLIT_BAR`` (environment, default 0.3) is detached to a new identity.

``offline`` clusters each recording's whole tracklets at once (average linkage of the gallery's tracklet
prototypes, no identity in two places or walking too fast: ``Associator.mergeable``) at several cuts.
Prints IDF1 per recording, the hindsight reference, and on how many recordings the result is under it.
"""

from __future__ import annotations

import bisect
import collections
import heapq
import os
import shutil
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

RECORDINGS = [("f", s) for s in range(8)] + [("d", s) for s in range(4)]
CUTS = (0.40, 0.45, 0.50, 0.55, 0.60, 0.65)  # cosine distance


def _merge_average_linkage(self: Any, applied: list) -> list:
    """Gallery._merge_pass_locked with average linkage (the product's pass with its score changed)."""
    from anonreid.gallery.types import Split

    since = self._latest_us - int(self.config.merge_window_s * 1e6)
    recent: set[str] = set()
    for ends in self._ends.values():
        recent.update(self._sightings[sid].identity_id for _, sid in ends[bisect.bisect_left(ends, (since, "")):])
    tracks = sorted((self._tracks[i] for i in recent if i in self._tracks), key=lambda t: (t.sightings[0].start_us, t.identity_id))
    if len(tracks) < 2:
        return []
    bar = self.config.merge_threshold
    sums = np.stack([self.tracklets.prototype_sum(t.by_tracklet, self._tracklet_ids) for t in tracks])
    n = np.array([len(t.by_tracklet) for t in tracks], np.float64)
    heap = [(-float(sim[c]), a, c, 0, 0) for a in range(len(tracks)) for sim in [(sums @ sums[a]) / (n * n[a])]
            for c in np.nonzero(sim >= bar)[0].tolist() if c > a]
    heapq.heapify(heap)
    alive, version, out = np.ones(len(tracks), bool), [0] * len(tracks), []
    while heap:
        neg, a, b, va, vb = heapq.heappop(heap)
        if not (alive[a] and alive[b] and version[a] == va and version[b] == vb):
            continue
        into, other = tracks[a], tracks[b]
        if not self.associator.mergeable(into, other):
            continue
        moves = [Split(other.identity_id, cam, trk, into.identity_id, tuple(r.sighting_id for r in rows), "merge", -neg)
                 for (cam, trk), rows in other.by_tracklet.items()]
        self._apply_splits(moves, applied)
        out.extend(self._corrections(moves, self._latest_us))
        alive[b], version[a] = False, version[a] + 1
        sums[a] += sums[b]
        n[a] += n[b]
        sim = (sums @ sums[a]) / (n * n[a])
        for c in np.nonzero(alive & (sim >= bar))[0].tolist():
            if c != a:
                x, y = min(a, c), max(a, c)
                heapq.heappush(heap, (-float(sim[c]), x, y, version[x], version[y]))
    return out


def _with_split_pass(merge_pass: Any) -> Any:
    def run(self: Any, applied: list) -> list:
        from anonreid.gallery.core import identity_name
        from anonreid.gallery.types import Split

        out = merge_pass(self, applied)
        bar = float(os.environ.get("SPLIT_BAR", "0.3"))
        since = self._latest_us - int(self.config.merge_window_s * 1e6)
        recent: set[str] = set()
        for ends in self._ends.values():
            recent.update(self._sightings[sid].identity_id for _, sid in ends[bisect.bisect_left(ends, (since, "")):])
        for identity_id in sorted(recent):
            track = self._tracks.get(identity_id)
            if track is None or len(track.by_tracklet) < 2:
                continue
            keys = list(track.by_tracklet)
            protos = np.stack([self.tracklets.prototype(k, lambda k=k: self._tracklet_ids(k)) for k in keys])
            sims = protos @ protos.T
            fit = (sims.sum(1) - np.diag(sims)) / (len(keys) - 1)
            worst = int(np.argmin(fit))
            if fit[worst] < bar:
                cam, trk = keys[worst]
                new_id = identity_name(self._next_identity)
                self._next_identity += 1
                split = Split(identity_id, cam, trk, new_id, tuple(r.sighting_id for r in track.by_tracklet[keys[worst]]),
                              "detach", float(fit[worst]))
                self._apply_splits([split], applied)
                out.extend(self._corrections([split], self._latest_us))
        return out
    return run


def _patch(variant: str) -> None:
    from anonreid.gallery.core import Gallery

    if variant == "avg":
        Gallery._merge_pass_locked = _merge_average_linkage  # type: ignore[method-assign]
    elif variant == "split":
        Gallery._merge_pass_locked = _with_split_pass(Gallery._merge_pass_locked)  # type: ignore[method-assign]
    elif variant not in ("base", "offline"):
        raise SystemExit(f"unknown variant {variant!r}: base, avg, split or offline")


def _replay(args: tuple[str, str, int, str, list[str]]) -> tuple[str, float, float, dict[float, float]]:
    recdir, tag, seed, variant, sets = args
    _patch(variant)
    from anonreid.gallery.association import IdentityTrack
    from anonreid.gallery.core import Gallery
    from anonreid.gallery.servicer import sighting_from_pb
    from anonreid.gallery.store import GalleryStore
    from anonreid.models.evaluation.association_metrics import identity_scores
    from anonreid.orchestration.bench.association import evaluate, load_recording
    from anonreid.orchestration.cli_common import resolve_config
    from anonreid.orchestration.config import RedisConfig
    from anonreid.orchestration.demo import world_gallery_config
    from anonreid.orchestration.redis_service import RedisService

    cfg = resolve_config(None, [f"world.seed={seed}", *(["world.realism.enabled=true"] if tag == "d" else []), *sets])
    rec = load_recording(Path(recdir) / f"{tag}{seed}.rec", cfg)
    result = evaluate(cfg, rec, [cfg.gallery.similarity_threshold])
    online, hindsight = result["thresholds"][0]["scores"]["idf1"], result["hindsight"]["scores"]["idf1"]
    if variant != "offline":
        return f"{tag}{seed}", online, hindsight, {}
    sightings = sorted(rec["sightings"], key=lambda s: (s.span.end_us, s.camera_id, s.sighting_id))
    truth = [g for g, _ in rec["observations"]]
    tmp = tempfile.mkdtemp()
    service = RedisService(RedisConfig(embedded_dir=tmp)).start()
    try:
        gcfg = world_gallery_config(cfg)
        gallery = Gallery(gcfg, GalleryStore(service.client(), gcfg.redis_prefix, gcfg.embedding_dim))
        for s in sightings:
            gallery.ingest(sighting_from_pb(s))
        rows: dict[tuple[str, str], list] = collections.defaultdict(list)
        for track in gallery._tracks.values():
            for key, r in track.by_tracklet.items():
                rows[key].extend(r)
        keys = sorted(rows)
        protos = np.stack([gallery.tracklets.prototype(k, lambda k=k: gallery._tracklet_ids(k)) for k in keys])
        sims = protos @ protos.T
        per_cut = {}
        for cut in CUTS:
            clusters = {i: [i] for i in range(len(keys))}
            tracks = {}
            for i, k in enumerate(keys):
                tracks[i] = IdentityTrack(f"c{i}")
                tracks[i].extend(rows[k])
            while True:
                best = None
                for a in clusters:
                    for b in clusters:
                        if b > a and (sim := sims[np.ix_(clusters[a], clusters[b])].mean()) >= 1 - cut and \
                                (best is None or sim > best[0]) and gallery.associator.mergeable(tracks[a], tracks[b]):
                            best = (sim, a, b)
                if best is None:
                    break
                _, a, b = best
                clusters[a] += clusters.pop(b)
                tracks[a].extend(tracks.pop(b).sightings)
            label = {r.sighting_id: f"c{c}" for c, members in clusters.items() for i in members for r in rows[keys[i]]}
            pred = [None if sid is None else label.get(sid) for _, sid in rec["observations"]]
            per_cut[cut] = identity_scores(truth, pred).idf1
        return f"{tag}{seed}", online, hindsight, per_cut
    finally:
        service.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    recdir, variant, sets = sys.argv[1], sys.argv[2], sys.argv[3:]
    with ProcessPoolExecutor(2) as pool:
        got = list(pool.map(_replay, [(recdir, t, s, variant, sets) for t, s in RECORDINGS]))
    if variant == "offline":
        for cut in CUTS:
            vals = [per_cut[cut] for _, _, _, per_cut in got]
            under = sum(v < h for v, (_, _, h, _) in zip(vals, got, strict=True))
            print(f"offline cut {cut}: " + " ".join(f"{name}:{v:.3f}" for v, (name, *_) in zip(vals, got, strict=True))
                  + f" mean {np.mean(vals):.3f} under hindsight {under}")
        return
    for name, online, hindsight, _ in got:
        print(f"{name} IDF1 {online:.3f} hindsight {hindsight:.3f}{'  UNDER' if online < hindsight else ''}")
    groups = {"fixed 0-3": got[0:4], "fixed 4-7": got[4:8], "drawn 0-3": got[8:12]}
    print(variant, sets, " ".join(f"{g} {np.mean([r[1] for r in rows]):.3f}" for g, rows in groups.items()),
          f"all {np.mean([r[1] for r in got]):.3f} under {sum(r[1] < r[2] for r in got)}")


if __name__ == "__main__":
    main()
