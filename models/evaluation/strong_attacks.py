"""Every attack of a run side by side, the strongest one per metric, budgets and collapse verdicts.

``anonreid evaluate`` reconstructs the test clips through every reconstruction attack the run trained
(:data:`~anonreid.models.evaluation.attacks.ATTACK_VIEWS`) and scores each like the paper's attack
(SSIM/PSNR with floors, retrieval by the attacker's appearance net, face verification). This module
adds the direct identity attack (:func:`identity_attack`: enrollment photos -> anonymized crops through
the two towers of stage ``identity``, no reconstruction step; and its no-privacy reference, the towers of
stage ``identity_raw`` on the raw events, which is not an attack on E_an and not in the table, with the
paired rank-1 difference between the two) and gathers, per attack
(:func:`attacks_table`):

  * its training budget and the 3x rule's verdict against the attackers E_an was trained against
    (:mod:`anonreid.models.budget`; ``null`` for the untrained plain attack and the closed-form floor);
  * its scores: person-region SSIM (full-frame where boxes are missing), enrollment -> attack rank-1,
    attack -> enrollment rank-1 (every test clip a query against the enrollment photos),
    raw reconstruction -> attack rank-1, face-verification AUC, each with its interval;
  * its collapse verdict (:mod:`anonreid.models.evaluation.collapse`);

and the strongest attack per metric: the one with the highest upper bound of its 95 % interval, the
rule results.md's "Strongest attack per metric" (:func:`~anonreid.models.evaluation.report.strongest_attacks`)
and every privacy check use. Each comes back typed (:class:`~anonreid.models.evaluation.results.AttacksTable`,
:func:`attacks_table`); the report renders it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anonreid.models.evaluation.attacks import ranking_scores
from anonreid.models.evaluation.collapse import collapse_check
from anonreid.models.evaluation.intervals import Estimate
from anonreid.models.evaluation.results import (
    IDENTITY_DIRECTIONS,
    AttackRow,
    AttackScores,
    AttacksTable,
    ChanceEstimate,
    RetrievalScore,
    Scores,
    raw_key,
)

#: every attack: (results key / view, what it is, its checkpoint (None: nothing trained), trained attack)
ATTACKS: tuple[tuple[str, str, str | None, bool], ...] = (
    ("anonymized", "E_rec(E_an X): the raw attacker on anonymized events (the paper's attack)", None, False),
    ("linear", "E_rec(linear inverse(E_an X)): the closed-form floor", "e_lin", False),
    ("inversion", "E_rec(E_inv(E_an X)), E_inv trained end to end through E_rec", "e_inv", True),
    ("adaptive", "E_rec' trained on anonymized events from scratch", "e_rec_adaptive", True),
    ("finetuned", "the raw E_rec fine-tuned on anonymized events", "e_rec_finetuned", True),
    ("identity", "direct identity attack: voxel + photo towers, no reconstruction", "attack_id_voxel", True),
)
#: metric -> (title, higher = stronger attack)
METRICS = {"ssim": "SSIM (person region)", "enrollment_rank1": "rank-1 enrollment photo -> attack",
           "stream_rank1": "rank-1 attack's clips -> enrollment photos",
           "raw_rank1": "rank-1 raw reconstruction -> attack", "face_auc": "face verification AUC"}
#: stage config section of each trained attack's checkpoint (for runs whose checkpoints predate budgets)
_STAGE_OF = {"e_inv": "inv", "e_rec_adaptive": "adaptive", "e_rec_finetuned": "finetune", "attack_id_voxel": "identity"}


@torch.no_grad()
def identity_attack(run_dir: Path, enrollment: Mapping[str, np.ndarray], anon_last: np.ndarray | None,
                    raw_last: np.ndarray | None, boxes: np.ndarray, ids: np.ndarray, cams: np.ndarray,
                    query_camera: str, seed: int = 0, device: str | torch.device = "cpu", batch: int = 64,
                    enrollment_day: int = 0) -> tuple[dict[str, RetrievalScore | None], dict[str, Estimate]]:
    """The direct identity attack's retrieval rows, both ways (:data:`IDENTITY_DIRECTIONS`), on the
    anonymized last windows ``anon_last`` through the towers of stage ``identity``, and, as its no-privacy
    reference, on the raw last windows ``raw_last`` through those of stage ``identity_raw`` (keys with
    ``identity_raw``); each set only where the run trained its towers and there are photos and clips.

    With both, also what the anonymizer takes from the attack, per direction: the paired difference of
    rank-1, raw minus anonymized, over the same queries (each query's hit on raw events minus its hit
    on anonymized ones), with an identity-cluster bootstrap interval.

    ``enrollment`` holds the photos of ``enrollment_day``; towers trained on another day's photos are
    refused (the attack would be scored against a threat it was not trained for)."""
    from anonreid.models.evaluation.intervals import bootstrap_ci
    from anonreid.models.evaluation.metrics import cmc_map, cosine_distance
    from anonreid.models.identity_attack import load_identity_towers

    rows: dict[str, RetrievalScore | None] = {}
    hits: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # key -> (rank-1 hits, their query ids, index)
    for raw, last in ((False, anon_last), (True, raw_last)):
        if last is None or not enrollment:
            continue
        towers = load_identity_towers(run_dir / "checkpoints", device, raw=raw)
        if towers is None:
            continue
        if (trained := int(towers.metadata.get("enrollment_day", 0))) != enrollment_day:
            stage = "identity_raw" if raw else "identity"
            raise ValueError(f"{run_dir / 'checkpoints'}: stage {stage} trained on enrollment photos of day {trained}, "
                             f"the evaluation uses day {enrollment_day} (identity.enrollment_day in config.yaml): "
                             f"retrain it with --set identity.enrollment_day={enrollment_day}")
        p_ids = np.asarray(sorted(enrollment))
        p_emb = towers.photo_embeddings([enrollment[i] for i in p_ids]).numpy()
        v_emb = towers.voxel_embeddings(last, boxes, batch).numpy()
        p_cams = np.full(len(p_ids), query_camera)
        sides = {IDENTITY_DIRECTIONS[0]: (p_emb, p_ids, p_cams, v_emb, ids, cams),
                 IDENTITY_DIRECTIONS[1]: (v_emb, ids, cams, p_emb, p_ids, p_cams)}
        for direction, (q, q_ids, q_cams, g, g_ids, g_cams) in sides.items():
            key = raw_key(direction) if raw else direction
            res = cmc_map(cosine_distance(q, g), np.asarray(q_ids), np.asarray(g_ids), q_cams, g_cams)
            rows[key] = ranking_scores(res, np.asarray(q_ids), q_cams, g_ids, g_cams, seed=seed)
            hits[key] = (res.rank1_hit, np.asarray(q_ids)[res.valid_query_index], res.valid_query_index)
    reduction: dict[str, Estimate] = {}
    for direction in IDENTITY_DIRECTIONS:
        anon, ref = hits.get(direction), hits.get(raw_key(direction))
        if anon is not None and ref is not None and np.array_equal(anon[2], ref[2]):  # the same queries
            diff = ref[0].astype(np.float64) - anon[0].astype(np.float64)
            reduction[direction] = bootstrap_ci(diff, anon[1], seed=seed, bounds=(-1.0, 1.0))
    return rows, reduction


def _budget(run_dir: Path, checkpoint: str, against: list[Any]) -> dict[str, Any] | None:
    from anonreid.models.budget import Budget, budget_report
    from anonreid.models.checkpoint import read_sidecar

    meta = read_sidecar(run_dir / "checkpoints" / checkpoint)["metadata"]
    if "budget" in meta:
        budget = Budget.from_dict(meta["budget"])
    else:  # a checkpoint from before budgets were recorded: its stage's config
        section = (meta.get("config") or {}).get(_STAGE_OF.get(checkpoint, ""), {})
        if "steps" not in section:
            return None
        batch = section.get("batch_size") or section.get("p", 0) * section.get("k", 0)
        budget = Budget(checkpoint, "identity" if checkpoint == "attack_id_voxel" else "reconstruction",
                        int(section["steps"]), int(batch))
    return budget_report(budget, against)


def _score(scores: Scores, view: str) -> AttackScores:
    rec = scores.reconstruction.views.get(view)
    person = rec.person.get("ssim") if rec is not None else None
    ssim = person or (rec.ssim if rec is not None else None)

    def rank1(key: str) -> ChanceEstimate | None:
        r = scores.retrieval.get(key)
        return None if r is None else ChanceEstimate(r.rank1, r.chance["rank1"])

    face = scores.face.rows.get(view)
    return AttackScores(ssim, "person" if person else "full frame", rank1(f"enrollment->{view}"),
                        rank1(f"{view}->enrollment"), rank1(f"raw->{view}"),
                        None if face is None else ChanceEstimate(face.auc, face.chance_auc))


def attacks_table(run_dir: Path, scores: Scores, views: Mapping[str, np.ndarray],
                  reference: np.ndarray | None) -> AttacksTable:
    """Every attack with its budget, scores and collapse verdict, and the strongest attack per metric (see
    the module docstring); ``scores`` holds the reconstruction, retrieval and face tables (and the
    identity attack's ``enrollment->identity`` retrieval row)."""
    from anonreid.models.budget import trained_against
    from anonreid.models.checkpoint import read_sidecar

    an_path = run_dir / "checkpoints" / "anonymizer"
    against = trained_against(read_sidecar(an_path)["metadata"]) if an_path.with_suffix(".json").exists() else []
    identity = scores.retrieval.get("enrollment->identity") or scores.retrieval.get("identity->enrollment")
    present = set(views) | ({"identity"} if identity else set())
    rows: dict[str, AttackRow] = {}
    for name, title, ckpt, trained in ATTACKS:
        if name in present:
            rows[name] = AttackRow(title, ckpt, trained, _budget(run_dir, ckpt, against) if trained and ckpt else None,
                                   _score(scores, name))
    linear = rows["linear"].scores if "linear" in rows else None
    for name, a in rows.items():
        if not a.trained:
            continue
        mine = {m: _interval(e) for m in ("ssim", "enrollment_rank1") if (e := a.scores.metric(m)) is not None}
        floor = {m: _interval(e) for m in ("ssim", "enrollment_rank1")
                 if linear is not None and (e := linear.metric(m)) is not None}
        output = views.get(name) if reference is not None else None
        verdict = collapse_check(name, output, reference if output is not None else None, mine, floor)
        rows[name] = replace(a, collapse=verdict)
    strongest: dict[str, tuple[str, Estimate | ChanceEstimate]] = {}
    for metric in METRICS:
        cands = [(getattr(a.scores, metric), name) for name, a in rows.items() if getattr(a.scores, metric) is not None]
        cands = [(s, n) for s, n in cands if np.isfinite(_estimate(s).value)]
        if cands:
            best, name = max(cands, key=lambda c: (_estimate(c[0]).ci_high, _estimate(c[0]).value))
            strongest[metric] = (name, best)
    return AttacksTable(rows, strongest, [b.as_dict() for b in against])


def _interval(e: Estimate) -> dict[str, float]:
    return {"value": e.value, "ci_low": e.ci_low, "ci_high": e.ci_high}


def _estimate(s: Estimate | ChanceEstimate) -> Estimate:
    return s.estimate if isinstance(s, ChanceEstimate) else s
