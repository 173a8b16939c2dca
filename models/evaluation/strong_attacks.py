"""Every attack of a run side by side, the strongest one per metric, budgets and collapse verdicts.

``anonreid evaluate`` reconstructs the test clips through every reconstruction attack the run trained
(:data:`~anonreid.models.evaluation.attacks.ATTACK_VIEWS`) and scores each like the paper's attack
(SSIM/PSNR with floors, retrieval by the attacker's appearance net, face verification). This module
adds the direct identity attack (:func:`identity_attack`: enrollment photos -> anonymized crops through
the two towers of stage ``identity``, no reconstruction step) and gathers, per attack
(:func:`attack_results`):

  * its training budget and the 3x rule's verdict against the attackers E_an was trained against
    (:mod:`anonreid.models.budget`; ``null`` for the untrained plain attack and the closed-form floor);
  * its scores: person-region SSIM (full-frame where boxes are missing), enrollment -> attack rank-1,
    raw reconstruction -> attack rank-1, face-verification AUC, each with its interval;
  * its collapse verdict (:mod:`anonreid.models.evaluation.collapse`);

and the strongest attack per metric: the one with the highest upper bound of its 95 % interval, the
rule results.md's "Strongest attack per metric" (:func:`~anonreid.models.evaluation.report.strongest_attacks`)
and every privacy check use.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anonreid.models.evaluation.attacks import RetrievalScore, retrieval_scores
from anonreid.models.evaluation.collapse import collapse_check

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
           "raw_rank1": "rank-1 raw reconstruction -> attack", "face_auc": "face verification AUC"}
#: stage config section of each trained attack's checkpoint (for runs whose checkpoints predate budgets)
_STAGE_OF = {"e_inv": "inv", "e_rec_adaptive": "adaptive", "e_rec_finetuned": "finetune", "attack_id_voxel": "identity"}


@torch.no_grad()
def identity_attack(run_dir: Path, enrollment: Mapping[str, np.ndarray], anon_last: np.ndarray | None,
                    boxes: np.ndarray, ids: np.ndarray, cams: np.ndarray, query_camera: str, seed: int = 0,
                    device: str | torch.device = "cpu", batch: int = 64) -> RetrievalScore | None:
    """Enrollment photo -> anonymized crop rank-1 of the direct identity attack (None when the run has
    no such attack, or there are no photos / anonymized clips)."""
    from anonreid.models.identity_attack import load_identity_towers

    if anon_last is None or not enrollment:
        return None
    towers = load_identity_towers(run_dir / "checkpoints", device)
    if towers is None:
        return None
    q_ids = np.asarray(sorted(enrollment))
    q_emb = towers.photo_embeddings([enrollment[i] for i in q_ids])
    g_emb = towers.voxel_embeddings(anon_last, boxes, batch)
    return retrieval_scores(q_emb.numpy(), q_ids, np.full(len(q_ids), query_camera), g_emb.numpy(), ids, cams,
                            seed=seed)


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


def _score(res: dict[str, Any], view: str) -> dict[str, Any]:
    rec = res.get("reconstruction", {}).get(view) or {}
    person = (rec.get("person") or {}).get("ssim")
    out: dict[str, Any] = {"ssim": person or rec.get("ssim"), "ssim_region": "person" if person else "full frame"}
    for metric, key in (("enrollment_rank1", f"enrollment->{view}"), ("raw_rank1", f"raw->{view}")):
        r = res.get("retrieval", {}).get(key)
        out[metric] = {**r["rank1"], "chance": r["chance"]["rank1"]} if r else None
    face = res.get("face", {}).get(view)
    out["face_auc"] = {**face["auc"], "chance": face.get("chance_auc", 0.5)} if face else None
    return out


def attack_results(run_dir: Path, res: dict[str, Any], views: Mapping[str, np.ndarray],
                   reference: np.ndarray | None) -> dict[str, Any]:
    """``{"attacks": {...}, "strongest": {...}}`` for ``results.json`` (see the module docstring); ``res``
    already holds the reconstruction, retrieval and face scores (and ``res["retrieval"]["enrollment->
    identity"]`` for the identity attack)."""
    from anonreid.models.budget import trained_against
    from anonreid.models.checkpoint import read_sidecar

    an_path = run_dir / "checkpoints" / "anonymizer"
    against = trained_against(read_sidecar(an_path)["metadata"]) if an_path.with_suffix(".json").exists() else []
    present = {name for name in views} | ({"identity"} if res.get("retrieval", {}).get("enrollment->identity") else set())
    attacks: dict[str, Any] = {}
    for name, title, ckpt, trained in ATTACKS:
        if name not in present:
            continue
        attacks[name] = {"title": title, "checkpoint": ckpt, "trained": trained,
                         "budget": _budget(run_dir, ckpt, against) if trained and ckpt else None,
                         "scores": _score(res, name)}
    linear = attacks.get("linear", {}).get("scores", {})
    for name, a in attacks.items():
        if not a["trained"]:
            continue
        scores = {m: a["scores"][m] for m in ("ssim", "enrollment_rank1") if a["scores"].get(m)}
        floor = {m: linear[m] for m in ("ssim", "enrollment_rank1") if linear.get(m)}
        output = views.get(name) if reference is not None else None
        a["collapse"] = collapse_check(name, output, reference if output is not None else None, scores,
                                       floor).as_dict()
    strongest: dict[str, Any] = {}
    for metric in METRICS:
        cands = [(a["scores"][metric], name) for name, a in attacks.items() if a["scores"].get(metric)]
        cands = [(s, n) for s, n in cands if s.get("value") is not None and np.isfinite(s["value"])]
        if cands:
            best, name = max(cands, key=lambda c: (c[0]["ci_high"], c[0]["value"]))
            strongest[metric] = {"attack": name, **best}
    return {"attacks": attacks, "strongest": strongest, "attackers_in_training": [b.as_dict() for b in against]}


def attacks_markdown(res: dict[str, Any]) -> str:
    """The "every attack" section of results.md."""
    from anonreid.models.evaluation.report import est, est_pct, pct, table

    attacks = res.get("attacks") or {}
    if not attacks:
        return ""

    def rank(s: dict[str, Any] | None) -> str:
        return "n/a" if not s else f"{est_pct(s)} (chance {pct(s['chance'])})"

    def budget(b: dict[str, Any] | None) -> str:
        if not b:
            return "—"
        verdict = "ok" if b["ok"] else "BELOW 3x"
        return f"{b['samples']} ({b['steps']} x {b['batch_size']}) / needs {b['required']}: {verdict}"

    rows = []
    for name, a in attacks.items():
        c = a.get("collapse")
        state = "—" if c is None else ("COLLAPSED: " + "; ".join(c["reasons"]) if c["collapsed"] else "ok")
        s = a["scores"]
        rows.append([f"{name}: {a['title']}", budget(a["budget"]), est(s["ssim"]) if s["ssim"] else "n/a",
                     rank(s["enrollment_rank1"]), rank(s["raw_rank1"]),
                     est(s["face_auc"]) if s["face_auc"] else "n/a", state])
    trained = ", ".join(f"{b['name']} ({b['kind']}, {b['total']} samples)" for b in res.get("attackers_in_training", []))
    out = ["## Every attack (trained after E_an was frozen, on training identities only)", "",
           f"Attackers E_an was trained against: {trained or 'not recorded'}. Budget = the attack's own "
           "steps x batch samples (clips for reconstruction, crops for identity), which must be at least 3x the "
           "total of every attacker of its kind in E_an's training. Collapsed = output spread under 10% of the "
           "target's, or its interval wholly below the linear-inverse floor's on every metric.", "",
           table(["attack", "budget", METRICS["ssim"], "rank-1 enrollment → attack", "rank-1 raw → attack",
                  "face AUC", "collapse check"], rows), ""]
    return "\n".join(out) + "\n\n"


def with_attacks_section(markdown: str, res: dict[str, Any]) -> str:
    """results.md with the every-attack section inserted before its strongest-attack section (or its
    figures; appended when it has neither)."""
    section = attacks_markdown(res)
    for anchor in ("\n## Strongest attack per metric", "\n## Figures"):
        if anchor in markdown:
            return markdown.replace(anchor, "\n" + section + anchor.lstrip("\n"), 1)
    return markdown + "\n" + section
