"""``results.md`` and the PNG figures of ``anonreid evaluate``, rendered from its typed results
(:mod:`anonreid.models.evaluation.results`), and the automatic checks on them: each privacy claim judged
on its interval's upper bound (:func:`privacy_checks`, :func:`verdicts`), the strongest attack per metric
(:func:`strongest_checks`) and the paper's story (:func:`story_checks`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from anonreid.models.evaluation.intervals import (
    BREACH,
    INSUFFICIENT,
    PASS,
    Estimate,
    binomial_width_at,
    pass_probability_at_chance,
    privacy_state,
    upper_bound_at_chance,
)
from anonreid.models.evaluation.protocol import MIN_REID_QUERIES, MIN_TEST_IDENTITIES, Protocol
from anonreid.models.evaluation.results import (
    ENROLLMENT_CAMERA,
    PAPER,
    UNREDACTED,
    AttacksTable,
    ChanceEstimate,
    EncryptionTable,
    EvaluationResults,
    PrivacyCheck,
    ReconstructionScore,
    ReconstructionTable,
    RetrievalScore,
    Scores,
    Verdicts,
    raw_key,
)

PAPER_NOTE = ("paper: Ahmad et al., ICCV 2023, on Event-ReId (real data, ResNet-50, E2VID); ours: the run below "
              "on the synthetic world's test identities")
VIEW_TITLES = {"reference": "reference frame", "raw": "E_rec(raw)", "anonymized": "E_rec(anonymized)",
               "inversion": "inversion attack", "adaptive": "adaptive attacker",
               "finetuned": "fine-tuned E_rec", "linear": "linear inverse (floor)", "identity": "direct identity attack",
               "identity_raw": "direct identity attack on raw events (the no-privacy reference)"}
#: the every-attack table's metric columns (anonreid.models.evaluation.strong_attacks.METRICS, in this order)
ATTACK_METRIC_TITLES = ("SSIM (person region)", "rank-1 enrollment → attack", "rank-1 attack → enrollment",
                        "rank-1 raw → attack", "face AUC")


# ----------------------------------------------------------------------------------------------- formatting


def pct(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f}"


def est_pct(e: Estimate | None) -> str:
    """``value [lo, hi]`` in percent."""
    if e is None or not np.isfinite(e.value):
        return "n/a"
    return f"{100 * e.value:.1f} [{100 * e.ci_low:.1f}, {100 * e.ci_high:.1f}]"


def est(e: Estimate | None, digits: int = 3) -> str:
    if e is None or not np.isfinite(e.value):
        return "n/a"
    return f"{e.value:.{digits}f} [{e.ci_low:.{digits}f}, {e.ci_high:.{digits}f}]"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _ret_cells(r: RetrievalScore | None) -> list[str]:
    if r is None:
        return ["n/a"] * 5
    return [est_pct(r.rank1), pct(r.rank5), pct(r.rank10), est_pct(r.mAP),
            f"{pct(r.chance['rank1'])} / {pct(r.chance['mAP'])}"]


def _r1(r: RetrievalScore | None) -> str:
    return "n/a" if r is None else f"{est_pct(r.rank1)} (chance {pct(r.chance['rank1'])})"


def _ssim_psnr(r: ReconstructionScore | None) -> list[str]:
    return [est(r.ssim), est(r.psnr, 2)] if r is not None else ["n/a", "n/a"]


# -------------------------------------------------------------------------------------------------- markdown


def enrollment_line(day: int, photo_days: int = 1) -> str:
    """Which threat the enrollment photos model (``identity.enrollment_day``), and how many days' photos
    of each training person the identity attackers learned from (``identity.photo_days``)."""
    if day == 0:
        line = ("Enrollment photos: taken the day the cameras film, in the same outfit. Identifying people from "
                "them can use clothing, the very cue cross-camera ReId uses: an attack that links a same-day photo "
                "to anonymized clips is what any working ReId allows (the stream is pseudonymous).")
    else:
        line = (f"Enrollment photos: taken on another day (day {day}): another outfit, the same body, gait, hair and "
                "face (no face mask). Identifying people from them needs biometric cues, which the anonymizer is "
                "to hide.")
    if photo_days > 1:
        line += (f" The identity attackers learned from photos of {photo_days} days (days {day}-{day + photo_days - 1}, "
                 "a different outfit each) of every training person, so they learn the cues that survive a change "
                 "of clothes.")
    return line


def write_markdown(results: EvaluationResults) -> str:
    """The human-readable report: every table with CIs, chance levels and the paper's numbers."""
    info, s = results.info, results.scores
    t = info.test
    out = [f"# Evaluation of `{info.run_dir}` ({info.preset})", "", "Command:", "", "```",
           info.command or "(library call)", "```", "",
           f"Dataset: {info.dataset} `{info.data}`; {t.clips} test clips of {t.identities} identities, "
           f"cameras {', '.join(t.cameras)}; clips of {t.clip_len} windows on {t.tile_hw} tiles, at most "
           f"{t.clips_per_pass} per pass; device {info.device}; {results.wall_s} s.", "",
           "Numbers are percentages (SSIM/PSNR/AUC excepted) with 95% intervals that treat each identity as one "
           "independent unit: rank-1 exact Clopper–Pearson (widened by the design effect when an identity's queries "
           "are correlated), AUC clustered DeLong (logit), mAP / SSIM / PSNR identity bootstrap (BCa), each widened "
           "to an exact bound where it cannot vary (anonreid.models.evaluation.intervals); chance = the exact "
           "expectation of a random ranking over the same query/gallery ids after the Market-1501 exclusions; "
           f"floor = what an attacker scores without any appearance. {PAPER_NOTE}.", "",
           enrollment_line(info.enrollment_day, info.photo_days) if info.dataset == "world" else "", ""]
    out += protocol_lines(s.protocol)
    out += reconstruction_lines(s.reconstruction)
    out += encryption_lines(s, results.encryption)
    out += reid_lines(s, t.reid_protocol)
    out += retrieval_lines(s)
    out += ablation_lines(results)
    out += attack_view_lines(s)
    out += face_lines(s, info.face_embedder)
    out += attacks_lines(results.attacks)
    out += judgement_lines(s)
    if results.figures:
        out += ["## Figures", ""] + [f"![{name}]({name})" for name in results.figures] + [""]
    return "\n".join(out)


JUDGEMENT_HEADERS = ("## Strongest attack per metric", "## Against the paper's story (automatic checks)")


def judgement_lines(s: Scores) -> list[str]:
    """The judged part of results.md (from :data:`JUDGEMENT_HEADERS` to the figures): the strongest attack
    per metric and every automatic check."""
    return [*strongest_attacks(s), JUDGEMENT_HEADERS[1], "",
            "Every privacy check compares the 95% interval's *upper bound* with the limit: it holds when the upper "
            "bound is at or under it, does not hold when the lower bound is over it (or the interval, narrower than "
            "the margin, still reaches over it), and is not shown while the interval straddles the limit and is "
            "wider than the margin (insufficient evidence). An identification check also needs its positive "
            "control: the same attack without the anonymizer (on clean reference frames, or the direct identity "
            "attack's raw-event towers) clearly over the limit; otherwise the check could not fail and is not "
            "testable.", "", *(f"- {line}" for line in story_checks(s)), ""]


def rejudge(out_dir: Path) -> None:
    """Judge an evaluation's scores again with this code's rules, without evaluating again: rewrite
    ``verdicts`` in ``out_dir/results.json`` and the judged part of ``results.md`` (:func:`judgement_lines`);
    every number stays as it was measured."""
    import json

    json_path, md_path = out_dir / "results.json", out_dir / "results.md"
    for path in (json_path, md_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing (not an `anonreid evaluate` output directory)")
    res = json.loads(json_path.read_text())
    s = Scores.from_json(res)
    md = md_path.read_text()
    start = min((i for i in (md.find(h) for h in JUDGEMENT_HEADERS) if i >= 0), default=-1)
    if start < 0:
        raise ValueError(f"{md_path}: no section {JUDGEMENT_HEADERS[1]!r} to rewrite")
    end = md.find("\n## Figures", start)
    tail = md[end + 1:] if end >= 0 else ""
    md_path.write_text(md[:start] + "\n".join(judgement_lines(s)) + ("\n" + tail if tail else ""))
    res["verdicts"] = verdicts(s).to_json()
    json_path.write_text(json.dumps(res, indent=1) + "\n")


def reconstruction_lines(rec: ReconstructionTable) -> list[str]:
    """Table 2: the person region beside its floors, then the whole frame."""
    p = PAPER
    out = ["## Table 2: reconstruction attack (SSIM and PSNR, lower = more private)", ""]
    if rec.missing:
        return [*out, f"Not available: {rec.missing}.", ""]
    out += person_region_table(rec)
    rows = [[VIEW_TITLES.get(v, v), est(r.ssim), est(r.psnr, 2), f"{r.ssim_floor:.3f} / {r.psnr_floor:.2f}",
             str(p["ssim"].get(v, "")), str(p["psnr"].get(v, ""))] for v, r in rec.views.items()]
    return [*out, "Whole frame (background-dominated: the static background carries no events and every "
            "reconstruction, raw included, is compared with it; these rows say little about the person):", "",
            table(["input", "SSIM", "PSNR (dB)", "flat-grey floor SSIM / PSNR", "paper SSIM", "paper PSNR"], rows), ""]


def encryption_lines(s: Scores, enc: EncryptionTable | None) -> list[str]:
    """Table 3: no privacy vs the encryption baselines vs anonymization."""
    out = ["## Table 3: anonymization vs event encryption (75% of events; Du et al. 2021)", ""]
    rec, reid_gt = s.reconstruction.views, s.reid.boxes.get("gt", {})
    rows = [["no privacy", *_ssim_psnr(rec.get("raw")), est_pct(reid_gt["raw"].rank1) if "raw" in reid_gt else "n/a",
             _r1(s.retrieval.get("enrollment->raw"))]]
    for name, r in (enc.rows if enc is not None else {}).items():
        rows.append([f"chaotic {name}", *_ssim_psnr(r.reconstruction), est_pct(r.reid.rank1) if r.reid else "n/a",
                     _r1(r.retrieval)])
    anon = reid_gt.get("anonymized")
    rows.append(["anonymization (ours)", *_ssim_psnr(rec.get("anonymized")), est_pct(anon.rank1) if anon else "n/a",
                 _r1(s.retrieval.get("enrollment->anonymized"))])
    out += [table(["method", "SSIM", "PSNR", "ReId rank-1", "retrieval rank-1 (enrollment query)"], rows), ""]
    if enc is not None and enc.rows:
        return [*out, "Keys: " + "; ".join(f"{k}: `{v.transform}`" for k, v in enc.rows.items())
                + " (logistic map r = 3.99, see anonreid.events.encryption). ReId on encrypted events uses the raw-event "
                "ReId model; retrieval queries are enrollment photos against E_rec reconstructions of each stream.", ""]
    return [*out, "Encryption baselines not run (--no-encryption).", ""]


def reid_lines(s: Scores, protocol: str) -> list[str]:
    """Table 4: ReId, raw vs anonymized, on ground-truth and detected boxes."""
    p = PAPER
    out = [f"## Table 4: person ReId (Market-1501; {protocol})", ""]
    rows = []
    label = {"gt": "ground-truth boxes", "detected": "detected boxes",
             "cloth_changing": "ground-truth boxes, another outfit only"}
    for boxes in ("gt", "detected", "cloth_changing"):
        for v in ("raw", UNREDACTED, "anonymized"):
            r = s.reid.row(boxes, v)
            if r is not None:
                paper = f"{p['reid_rank1'][v]} / {p['reid_mAP'][v]}" if boxes == "gt" and v in p["reid_rank1"] else ""
                name = "raw, no head redaction" if v == UNREDACTED else v
                rows.append([f"{name} ({label[boxes]})", *_ret_cells(r), str(r.num_queries),
                             str(r.num_queries_without_match), paper])
    out += [table(["input", "rank-1", "rank-5", "rank-10", "mAP", "chance R1 / mAP", "queries", "no match",
                   "paper R1 / mAP"], rows), ""]
    if s.reid.raw_missing:
        out += [f"No raw row: {s.reid.raw_missing}.", ""]
    if s.reid.row("gt", UNREDACTED) is not None:
        out += ["The run's camera redacts each person's head band before E_an (events/redaction.py), and every "
                "input above is redacted like it but the *no head redaction* rows: the raw-event ReId on the same "
                "clips without it, the no-privacy baseline that the ReId drop is measured from.", ""]
    if "cloth_changing" in s.reid.boxes:
        out += ["Another outfit only: the test world films its people on several days (`world.outfit_days`), each "
                "day in another outfit; a query's matches are its person's clips of the other days (the clips of "
                "its own day leave the gallery too: the cloth-changing protocol of LTCC and PRCC).", ""]
    if s.reid.detection_recall is not None:
        out += [f"Detected boxes: the event-activity detector (anonreid.events.detection), matched to the ground truth "
                f"at IoU >= 0.3; found in {pct(s.reid.detection_recall)}% of the clips' last windows.", ""]
    return out


def retrieval_lines(s: Scores) -> list[str]:
    """The retrieval attack: every query -> gallery setting."""
    p = PAPER
    rows = [[k.replace("->", " → "), *_ret_cells(r)] for k, r in s.retrieval.rows.items()]
    return ["## Retrieval attack (the attacker's appearance ReId model)", "",
            table(["query → gallery", "rank-1", "rank-5", "rank-10", "mAP", "chance R1 / mAP"], rows), "",
            f"Paper: enrollment → raw {p['retrieval_rank1']['raw']}, → anonymized "
            f"{p['retrieval_rank1']['anonymized']} (rank-1).", ""]


def ablation_lines(results: EvaluationResults) -> list[str]:
    """Table 5: the loss ablation."""
    rows = []
    for r in results.ablation.rows.values():
        w = f"α={r.alpha:g} β={r.beta:g} γ={r.gamma:g}"
        if r.missing or r.reid is None:
            rows.append([w, "missing", "", "", "", ""])
            continue
        rows.append([w, *_ssim_psnr(r.reconstruction), est_pct(r.reid.rank1), est_pct(r.reid.mAP), _r1(r.retrieval)])
    return ["## Table 5: loss ablation (α utility, β privacy, γ ReId)", "",
            table(["weights", "SSIM", "PSNR", "ReId rank-1", "ReId mAP", "retrieval rank-1"], rows), ""]


def attack_view_lines(s: Scores) -> list[str]:
    """Tables 6 and 7: the inversion attack and the adaptive attacker."""
    rows = [[k.replace("->", " → "), *_ret_cells(s.retrieval.get(k))]
            for k in ("enrollment->inversion", "raw->inversion") if k in s.retrieval.rows]
    out = ["## Table 6: inversion attack (E_rec(E_inv(E_an(X))))", "",
           table(["query → gallery", "rank-1", "rank-5", "rank-10", "mAP", "chance R1 / mAP"], rows) if rows
           else "missing: the run has no inversion attacker (stage inv)", "",
           f"Paper: inversion rank-1 {PAPER['inversion_rank1']}.", "",
           "## Table 7: adaptive attacker (E_rec retrained on anonymized events)", ""]
    a = s.reconstruction.views.get("adaptive")
    if "adaptive" in s.face.rows or a is not None or "enrollment->adaptive" in s.retrieval.rows:
        return [*out, table(["SSIM", "PSNR", "retrieval rank-1 (enrollment)", "retrieval rank-1 (raw reconstruction)"],
                            [[*_ssim_psnr(a), _r1(s.retrieval.get("enrollment->adaptive")),
                              _r1(s.retrieval.get("raw->adaptive"))]]), ""]
    return [*out, "missing: the run has no adaptive attacker (stage adaptive)", ""]


def face_lines(s: Scores, face_embedder: str) -> list[str]:
    """Face verification of reference frames and reconstructions against the enrollment photos."""
    paper = PAPER["face_auc"]
    rows = [[VIEW_TITLES.get(k, k), est(f.auc), "0.500", str(f.num_genuine), str(f.num_impostor), str(paper.get(k, ""))]
            for k, f in s.face.rows.items() if f is not None]
    return ["## Face verification (faces of reference frames / reconstructions vs enrollment photos)", "",
            table(["probe faces", "ROC AUC", "chance", "genuine pairs", "impostor pairs", "paper"], rows) if rows
            else "not available (no enrollment photos or no face model)", "",
            f"Face embedder: {face_embedder}.", ""]


def attacks_lines(attacks: AttacksTable) -> list[str]:
    """The every-attack section: budgets against the 3x rule, scores and collapse verdicts."""
    if not attacks.rows:
        return []

    def rank(c: ChanceEstimate | None) -> str:
        return "n/a" if c is None else f"{est_pct(c.estimate)} (chance {pct(c.chance)})"

    def budget(b: dict[str, Any] | None) -> str:
        if not b:
            return "—"
        verdict = "ok" if b["ok"] else "BELOW 3x"
        return f"{b['samples']} ({b['steps']} x {b['batch_size']}) / needs {b['required']}: {verdict}"

    rows = []
    for name, a in attacks.rows.items():
        c = a.collapse
        state = "—" if c is None else ("COLLAPSED: " + "; ".join(c.reasons) if c.collapsed else "ok")
        sc = a.scores
        rows.append([f"{name}: {a.title}", budget(a.budget), est(sc.ssim), rank(sc.enrollment_rank1),
                     rank(sc.stream_rank1), rank(sc.raw_rank1), est(sc.face_auc.estimate) if sc.face_auc else "n/a", state])
    trained = ", ".join(f"{b['name']} ({b['kind']}, {b['total']} samples)" for b in attacks.attackers_in_training)
    return ["## Every attack (trained after E_an was frozen, on training identities only)", "",
            f"Attackers E_an was trained against: {trained or 'not recorded'}. Budget = the attack's own "
            "steps x batch samples (clips for reconstruction, crops for identity), which must be at least 3x the "
            "total of every attacker of its kind in E_an's training. Collapsed = output spread under 10% of the "
            "target's, or its interval wholly below the linear-inverse floor's on every metric.", "",
            table(["attack", "budget", *ATTACK_METRIC_TITLES, "collapse check"], rows), "", ""]


#: privacy limits of the automatic checks: rank-1 within MARGIN of chance, face AUC at most FACE_AUC_MAX,
#: person-region SSIM at most the best no-appearance floor (resolution SSIM_RESOLUTION)
MARGIN, FACE_AUC_MAX, SSIM_RESOLUTION = 0.05, 0.60, 0.02
#: a rank-1 check whose chance of passing an attacker exactly at chance is under this is flagged as low power
POWER = 0.95
#: slack of the utility comparisons on point estimates (differences of fractions: 0.55 - 0.50 is
#: 0.05000000000000004, 0.60 - 0.55 is 0.04999999999999993)
TOLERANCE = 1e-9
STATE_WORDS = {PASS: "holds", BREACH: "DOES NOT HOLD", INSUFFICIENT: "not shown (insufficient evidence)"}
NOT_ATTACKS = ("raw", "reference", "identity_raw")  # views that are baselines, not attacks on the anonymized stream


def reid_drop_within(raw: float, anonymized: float, margin: float = MARGIN) -> bool:
    """The utility rule of issue #16 on point estimates: anonymized ReId rank-1 at most ``margin`` under the
    no-privacy baseline (one rule for results.md's story and ``anonreid frontier``)."""
    return raw - anonymized <= margin + TOLERANCE


def _attacked(key: str) -> tuple[str, str] | None:
    """(what, view) of a retrieval key whose view is an attack on the anonymized stream: ``query->view``
    (enrollment photos or raw reconstructions against the attack's crops) or ``view->enrollment`` (the
    attack's crops, every clip a query, against the enrollment photos)."""
    query, _, view = key.partition("->")
    attack = query if view == ENROLLMENT_CAMERA else view  # stream queries: the attack's view is the query side
    return None if attack in NOT_ATTACKS or not attack else (retrieval_what(key), attack)


def retrieval_what(key: str) -> str:
    """Retrieval row ``key`` in words: ``<query> queries → <view>``, or ``stream queries (<view>) → enrollment
    photos`` where every clip of the view is a query against the enrollment photos."""
    query, _, view = key.partition("->")
    if view == ENROLLMENT_CAMERA:
        return f"stream queries ({VIEW_TITLES.get(query, query)}) → enrollment photos"
    return f"{query} queries → {VIEW_TITLES.get(view, view)}"


def check_state(metric: str, e: Estimate, limit: float) -> str:
    resolution = SSIM_RESOLUTION if metric == "SSIM" else MARGIN
    # a proportion (rank-1): whether the sample can decide is its interval's width at the limit, not at the score
    at_limit = binomial_width_at(limit, e.n_eff) if e.n_eff > 0 else None
    return privacy_state(e.ci_low, e.ci_high, limit, resolution, width_at_threshold=at_limit)


def _check(what: str, metric: str, e: Estimate, limit: float, chance: float | None = None,
           control: str = "") -> PrivacyCheck:
    """The check's state on the upper bound; a failed positive control (``control``) turns a pass into
    insufficient evidence, and is kept for any check it leaves undecided (a breach stays a breach, without it)."""
    state = check_state(metric, e, limit)
    if state == BREACH:
        control = ""
    elif control:
        state = INSUFFICIENT
    if chance is None or e.n_eff <= 0:
        return PrivacyCheck(what, metric, e, limit, state, control=control)
    return PrivacyCheck(what, metric, e, limit, state, upper_bound_at_chance(chance, e.n_eff),
                        pass_probability_at_chance(chance, e.n_eff, limit), control)


def control_key(key: str) -> str:
    """The positive control of retrieval row ``key`` (an attack on the anonymized stream): the same attacker
    on the same queries without the anonymizer: the appearance net on clean reference frames for the
    reconstruction attacks, raw reconstructions against raw reconstructions for raw queries, the direct
    identity attack's raw-event towers for the direct identity attack."""
    query, _, view = key.partition("->")
    if view == ENROLLMENT_CAMERA:
        return raw_key(key) if query == "identity" else f"reference->{ENROLLMENT_CAMERA}"
    if view == "identity":
        return raw_key(key)
    return f"{query}->raw" if query == "raw" else f"{query}->reference"


def failed_control(s: Scores, key: str, limit: float) -> str:
    """Why retrieval row ``key`` cannot show privacy: its positive control (:func:`control_key`) is not
    clearly over the check's ``limit`` (rank-1 lower bound at or under it), so the check would hold even
    with no anonymizer at all; "" when the control breaches the limit, or was not measured, except the
    direct identity attack's: its control is a stage of its own (``identity_raw``), and without it an
    attack that learned nothing (its matching loss at chance) would pass."""
    ctrl_key = control_key(key)
    ctrl = s.retrieval.get(ctrl_key)
    if ctrl is None and "identity_raw" in ctrl_key.split("->"):
        return ("its no-privacy reference, the same attack trained on raw events (stage identity_raw), was not "
                "trained, so nothing shows that it identifies anyone without the anonymizer")
    if ctrl is None or not np.isfinite(ctrl.rank1.ci_low) or ctrl.rank1.ci_low > limit:
        return ""
    return (f"the same attack without the anonymizer ({retrieval_what(ctrl_key)}) is not clearly over the "
            f"limit either: rank-1 {est_pct(ctrl.rank1)} (chance {pct(ctrl.chance['rank1'])}, limit {pct(limit)})")


def failed_face_control(s: Scores) -> str:
    """Why face verification cannot show privacy: on clean reference frames its AUC's lower bound is not
    over :data:`FACE_AUC_MAX`, so the check would hold even with no anonymizer; "" when it is, or when there
    are no reference frames."""
    ref = s.face.rows.get("reference")
    if ref is None or not np.isfinite(ref.auc.ci_low) or ref.auc.ci_low > FACE_AUC_MAX:
        return ""
    return (f"face verification on clean reference frames is not clearly over the limit either: AUC {est(ref.auc)} "
            f"(limit {FACE_AUC_MAX:.2f})")


#: the attacks trained on the anonymized stream after E_an was frozen (views of
#: :data:`~anonreid.models.evaluation.strong_attacks.ATTACKS`): each must beat the closed-form linear inverse
TRAINED_VIEWS = ("inversion", "adaptive", "finetuned", "identity")
LINEAR_VIEW = "linear"


def below_linear_floor(view: str, mine: Estimate, floor: Estimate | None, digits: int = 3) -> str:
    """Why a check of trained attack ``view`` cannot pass: on the same check its interval lies wholly under
    the closed-form linear inverse's (``floor``), so its low score measures a broken attack (issue #16: an
    attack that scores below the floor is broken), not the anonymizer; "" when it does not, or when
    ``view`` is no trained attack or the floor was not scored."""
    if view not in TRAINED_VIEWS or floor is None or not (np.isfinite(mine.ci_high) and np.isfinite(floor.ci_low)):
        return ""
    if mine.ci_high >= floor.ci_low:
        return ""
    return (f"the {VIEW_TITLES.get(view, view)} is clearly weaker here than the closed-form linear inverse, the floor "
            f"every trained attack must beat ({est(mine, digits)} against {est(floor, digits)}): a broken attack's "
            "low score shows nothing about the anonymizer")


def _linear_retrieval_key(key: str, view: str) -> str:
    """Retrieval row ``key`` of attack ``view`` with the linear inverse's crops in the attack's place."""
    query, _, gallery = key.partition("->")
    return f"{LINEAR_VIEW}->{gallery}" if query == view else f"{query}->{LINEAR_VIEW}"


def privacy_checks(s: Scores) -> list[PrivacyCheck]:
    """Every privacy claim on these scores: each attack's rank-1 against chance + MARGIN, face AUC against
    FACE_AUC_MAX, person-region SSIM against the best floor; each with its state on the upper bound. An
    identification check whose positive control fails (:func:`failed_control`: the attack without the
    anonymizer is not clearly over the limit, so the check could not fail) cannot pass, and neither can a
    check on which a trained attack is clearly weaker than the linear inverse (:func:`below_linear_floor`)."""
    checks = []
    for key, r in s.retrieval.rows.items():
        attacked = _attacked(key)
        if r is not None and attacked:
            limit = r.chance["rank1"] + MARGIN
            linear = s.retrieval.get(_linear_retrieval_key(key, attacked[1]))
            why = _reasons(failed_control(s, key, limit),
                           below_linear_floor(attacked[1], r.rank1, linear.rank1 if linear else None))
            checks.append(_check(attacked[0], "rank-1", r.rank1, limit, r.chance["rank1"], why))
    face_control = failed_face_control(s)
    linear_face = s.face.rows.get(LINEAR_VIEW)
    for view, f in s.face.rows.items():
        if f is not None and view not in NOT_ATTACKS:
            why = _reasons(face_control, below_linear_floor(view, f.auc, linear_face.auc if linear_face else None))
            checks.append(_check(f"face verification on {VIEW_TITLES.get(view, view)}", "AUC", f.auc, FACE_AUC_MAX,
                                 control=why))
    linear_rec = s.reconstruction.views.get(LINEAR_VIEW)
    for view, rec in s.reconstruction.views.items():
        if rec.person and view not in NOT_ATTACKS:
            floor = max(rec.person_floors["flat"]["ssim"], rec.person_floors["silhouette"]["ssim"])
            linear_ssim = linear_rec.person["ssim"] if linear_rec is not None and linear_rec.person else None
            checks.append(_check(f"person-region SSIM of {VIEW_TITLES.get(view, view)} (limit: the best floor)", "SSIM",
                                 rec.person["ssim"], floor, control=below_linear_floor(view, rec.person["ssim"], linear_ssim)))
    return checks


def _reasons(*why: str) -> str:
    return "; ".join(w for w in why if w)


def _fmt_est(metric: str, e: Estimate) -> str:
    return est_pct(e) if metric == "rank-1" else est(e)


def _fmt_limit(metric: str, limit: float) -> str:
    return pct(limit) if metric == "rank-1" else f"{limit:.3f}"


def _verdict_refused(proto: Protocol | None) -> bool:
    return proto is not None and proto.verdict is False


def story_checks(s: Scores, margin: float = MARGIN) -> list[str]:
    """Each claim checked on these numbers: "holds" / "DOES NOT HOLD" / "not shown (insufficient
    evidence)" with the values; privacy claims by the interval's upper bound (:func:`privacy_state`), and
    none at all when the protocol refused a verdict (the run saw test identities)."""
    lines = []
    rec, ret, reid = s.reconstruction.views, s.retrieval, s.reid.boxes.get("gt", {})

    def verdict(ok: bool) -> str:
        return "holds" if ok else "DOES NOT HOLD"

    proto = s.protocol
    if proto is not None:
        enough = proto.test_identities >= MIN_TEST_IDENTITIES and (proto.reid_queries or 0) >= MIN_REID_QUERIES
        lines.append(f"the evaluation has the power issue #16 asks for (at least {MIN_TEST_IDENTITIES} test identities "
                     f"and {MIN_REID_QUERIES} ReId queries; here {proto.test_identities} and "
                     f"{proto.reid_queries}): {verdict(enough)}")
    for metric, unit, digits in (("ssim", "", 3), ("psnr", " dB", 2)):
        if "raw" in rec and "anonymized" in rec:
            raw, anon = getattr(rec["raw"], metric), getattr(rec["anonymized"], metric)
            clear = anon.ci_high < raw.ci_low
            lines.append(f"whole-frame {metric.upper()} of reconstructions clearly lower from anonymized than from raw "
                         f"events ({anon.value:.{digits}f}{unit} vs {raw.value:.{digits}f}{unit}, 95% intervals "
                         f"apart): {verdict(clear)}")
    strong = ret.get("enrollment->raw")
    if strong is not None:
        above = strong.rank1.ci_low > strong.chance["rank1"]
        lines.append(f"the retrieval attacker works on raw reconstructions (rank-1 {est_pct(strong.rank1)} vs "
                     f"chance {pct(strong.chance['rank1'])}, lower bound above chance): {verdict(above)}"
                     + ("" if above else " (so the privacy checks below are not conclusive)"))
    lines += identity_reference_lines(s)
    base = s.reid.no_privacy("gt")
    if base is not None and "anonymized" in reid:
        unredacted = " (raw without the head redaction)" if UNREDACTED in reid else ""
        lines.append(f"ReId rank-1 drops by at most {100 * margin:.0f} points under anonymization (point estimates "
                     f"{est_pct(base.rank1)}{unredacted} -> {est_pct(reid['anonymized'].rank1)}): "
                     f"{verdict(reid_drop_within(base.rank1.value, reid['anonymized'].rank1.value, margin))}")
    if proto is not None and not proto.verdict:
        return [*lines, f"privacy: NO VERDICT: {proto.reason}"]
    for c in privacy_checks(s):
        power = "" if c.upper_at_chance is None or c.upper_at_chance <= c.limit else (
            f" (this size cannot show it: an attacker at chance would have an upper bound of {pct(c.upper_at_chance)}, "
            f"from {c.estimate.n_eff:.0f} effective queries)")
        if not power and c.pass_at_chance is not None and c.pass_at_chance < POWER:
            power = (f" (low power: an attacker exactly at chance passes this check with probability "
                     f"{c.pass_at_chance:.2f}, from {c.estimate.n_eff:.0f} effective queries)")
        control = f" (not testable: {c.control})" if c.control else ""
        lines.append(f"{c.what}: {c.metric} {_fmt_est(c.metric, c.estimate)}, upper bound at most "
                     f"{_fmt_limit(c.metric, c.limit)}: {STATE_WORDS[c.state]}{control}{power}")
    return lines or ["nothing to check (no anonymizer or no reference frames in this run)"]


def identity_reference_lines(s: Scores) -> list[str]:
    """What the anonymizer takes from the direct identity attack, per direction, when the run trained its
    raw-event reference (the same towers, budget and batches on raw events): both rank-1s and their paired
    difference over the same queries (identity bootstrap); it holds when the difference's lower bound is
    above zero."""
    lines = []
    for direction, what in (("identity->enrollment", "clips → enrollment photos"),
                            ("enrollment->identity", "enrollment photo → clips")):
        raw, anon, diff = s.retrieval.get(raw_key(direction)), s.retrieval.get(direction), s.identity_reduction.get(direction)
        if raw is None or anon is None or diff is None:
            continue
        lines.append(f"the anonymizer lowers the direct identity attack ({what}: raw events {est_pct(raw.rank1)} -> "
                     f"anonymized {est_pct(anon.rank1)}, chance {pct(anon.chance['rank1'])}; paired difference "
                     f"{est_pct(diff)} points, lower bound above 0): {'holds' if diff.ci_low > 0 else 'DOES NOT HOLD'}")
    return lines


def verdicts(s: Scores) -> Verdicts:
    """The automatic checks for results.json: every privacy check with its interval, limit and state
    (judged on the upper bound), the story lines as results.md prints them, and the protocol's permission."""
    given = not _verdict_refused(s.protocol)
    reason = "" if given or s.protocol is None else s.protocol.reason
    return Verdicts(given, reason, privacy_checks(s) if given else [], story_checks(s))


def attack_strength(c: PrivacyCheck) -> tuple[bool, bool, bool, float]:
    """How strong an attack's showing is, to rank privacy checks (larger is stronger): a shown breach
    first; then an attack whose upper bound is over its limit (with its positive control passed, so the
    claim fails on the upper bound); then one that could not be tested (``control`` set: the claim is open,
    whatever its own upper bound); then how far the upper bound reaches over the limit (rank-1 limits
    differ by chance, so this is how far over chance + MARGIN). An attack that could not be tested never
    hides one that shows more."""
    return strength(c.state, c.control, c.estimate.ci_high, c.limit)


def strength(state: str, control: str, ci_high: float, limit: float) -> tuple[bool, bool, bool, float]:
    """:func:`attack_strength` of an attack in privacy state ``state``, failed positive control ``control``
    ("" none) and rank-1 upper bound ``ci_high`` against ``limit``."""
    over = ci_high - limit
    return state == BREACH, not control and over > 0, bool(control), over


def strongest_checks(s: Scores) -> dict[str, PrivacyCheck]:
    """The strongest attack per privacy metric: ``{key: check}``, keys ``rank-1 (<query> queries)``, ``AUC``
    and ``SSIM``; strongest by :func:`attack_strength` (among passing attacks with one chance level, simply
    the highest upper bound). Checks without a finite upper bound are left out. The numbers only: the
    protocol's permission is the caller's."""
    best: dict[str, PrivacyCheck] = {}
    for c in privacy_checks(s):
        if not np.isfinite(c.estimate.ci_high):
            continue
        key = f"{c.metric} ({c.what.split(' queries')[0]} queries)" if c.metric == "rank-1" else c.metric
        if key not in best or attack_strength(c) > attack_strength(best[key]):
            best[key] = c
    return best


def strongest_attacks(s: Scores) -> list[str]:
    """The strongest attack per privacy metric (:func:`strongest_checks`), with its verdict."""
    if _verdict_refused(s.protocol):
        return []
    best = strongest_checks(s)
    if not best:
        return []
    rows = [[key, c.what, _fmt_est(c.metric, c.estimate), _fmt_limit(c.metric, c.limit), STATE_WORDS[c.state]]
            for key, c in best.items()]
    return ["## Strongest attack per metric", "",
            table(["metric", "attack", "value [95% interval]", "limit on the upper bound", "verdict"], rows), ""]


def protocol_lines(proto: Protocol | None) -> list[str]:
    """The protocol paragraph: split sizes, queries, where the run validated, and the verdict permission."""
    if proto is None:
        return []
    return ["## Protocol", "",
            f"Test identities: {proto.test_identities}; the run (its anonymizer, else its ReId) trained on "
            + (f"{proto.train_identities} identities " if proto.train_identities is not None
               else "an unknown number of identities (a training world was not found: see the verdict) ")
            + f"and validated on {proto.validation}; training worlds "
            f"{'; '.join(f'{fp} ({proto.worlds[fp]})' if fp in proto.worlds else fp for fp in proto.training_worlds)}. "
            f"ReId queries: {proto.reid_queries} (one per identity and camera); enrollment queries: "
            f"{proto.enrollment_queries}. "
            + "".join(f"World {fp} (not found byte for byte) taken as {where}, re-simulated with the same seed "
                      "and settings: asserted with --world-alias, not checked. " for fp, where in proto.asserted_worlds.items())
            + "Privacy verdict: "
            + ("given (no test identity was seen in training or validation)." if proto.verdict
               else f"NONE ({proto.reason})."), ""]


def person_region_table(rec: ReconstructionTable) -> list[str]:
    """SSIM / PSNR on the person (ground-truth box, padded 10%) beside the two no-appearance floors."""
    rows = []
    for v, r in rec.views.items():
        if r.person:
            fl = r.person_floors
            rows.append([VIEW_TITLES.get(v, v), est(r.person["ssim"]), est(r.person["psnr"], 2),
                         f"{fl['flat']['ssim']:.3f} / {fl['flat']['psnr']:.2f}",
                         f"{fl['silhouette']['ssim']:.3f} / {fl['silhouette']['psnr']:.2f}"])
    if not rows:
        return []
    return ["Person region (the ground-truth box of each clip's last frame, padded by 10%; the SSIM map of the whole "
            "frame averaged over it). Floors: a flat grey at the region's mean, and a blurred silhouette (the ellipse "
            "in the box, Gaussian-blurred by a quarter of its width, between the person's and the background's mean "
            "grey: where the person is, nothing of how they look).", "",
            table(["input", "SSIM", "PSNR (dB)", "flat-grey floor SSIM / PSNR", "silhouette floor SSIM / PSNR"], rows), ""]


# --------------------------------------------------------------------------------------------------- figures


def write_figures(s: Scores, views: dict[str, np.ndarray], reference: np.ndarray | None, test: Any,
                  out_dir: Path) -> list[str]:
    """retrieval_bars.png, reid_bars.png, image_grid.png, face_roc.png (those with data); returns names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    settings = [("enrollment->raw", "enrollment photo\nvs raw recon."), ("raw->anonymized", "raw recon.\nvs anon. recon."),
                ("enrollment->anonymized", "enrollment photo\nvs anon. recon.")]
    present = [(r, label) for r, label in ((s.retrieval.get(k), label) for k, label in settings) if r is not None]
    if present:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        rank1 = [r.rank1 for r, _ in present]
        x = np.arange(len(present))
        ax.bar(x, [100 * v.value for v in rank1], color="#4477aa",
               yerr=[[100 * (v.value - v.ci_low) for v in rank1], [100 * (v.ci_high - v.value) for v in rank1]],
               capsize=4, label="attacker rank-1")
        ax.scatter(x, [100 * r.chance["rank1"] for r, _ in present], color="#cc3311", marker="_",
                   s=900, zorder=3, label="chance")
        ax.set_xticks(x, [label for _, label in present], fontsize=8)
        ax.set_ylabel("rank-1 (%)")
        ax.set_ylim(0, 100)
        ax.set_title("Retrieval attack")
        ax.legend(fontsize=8)
        names.append(_save(fig, out_dir / "retrieval_bars.png"))
    rows = [(b, v, s.reid.row(b, v)) for b in ("gt", "detected") for v in ("raw", UNREDACTED, "anonymized")]
    groups = [(b, v, score) for b, v, score in rows if score is not None]
    if groups:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        metrics = ["rank1", "rank5", "rank10", "mAP"]
        width = 0.8 / len(groups)
        for i, (b, v, score) in enumerate(groups):
            vals = [score.rank1.value, score.rank5, score.rank10, score.mAP.value]
            ax.bar(np.arange(4) + i * width, [100 * x for x in vals], width, label=f"{v} ({b} boxes)")
        ax.set_xticks(np.arange(4) + width * (len(groups) - 1) / 2, metrics)
        ax.set_ylabel("%")
        ax.set_ylim(0, 100)
        ax.set_title("ReId: raw vs anonymized events")
        ax.legend(fontsize=8)
        names.append(_save(fig, out_dir / "reid_bars.png"))
    cols = ([("reference", reference)] if reference is not None else []) + [(k, v) for k, v in views.items()]
    if cols:
        names.append(image_grid(cols, test.ids, test.cams, out_dir / "image_grid.png"))
    faces = {k: f for k, f in s.face.rows.items() if f is not None}
    if faces:
        fig, ax = plt.subplots(figsize=(4.2, 4))
        for k, f in faces.items():
            fpr, tpr = f.roc()
            ax.plot(fpr.tolist(), tpr.tolist(), label=f"{VIEW_TITLES.get(k, k)} (AUC {f.auc.value:.2f})")
        ax.plot([0, 1], [0, 1], "k:", lw=1, label="chance")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title("Face verification attack")
        ax.legend(fontsize=7)
        names.append(_save(fig, out_dir / "face_roc.png"))
    return names


def image_grid(cols: list[tuple[str, np.ndarray]], ids: np.ndarray, cams: np.ndarray, path: Path,
               label: str = "id") -> str:
    """A grid of the last frame of one clip per identity (its middle clip; 6 at most): a column per view
    (``(name, (N, T, H, W) frames in [0, 1])``), a row per clip; returns the file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = [int(np.flatnonzero(ids == i)[len(np.flatnonzero(ids == i)) // 2]) for i in sorted(set(ids.tolist()))][:6]
    fig, axes = plt.subplots(len(picks), len(cols), figsize=(1.6 * len(cols), 2.2 * len(picks)), squeeze=False)
    for r, idx in enumerate(picks):
        for c, (name, frames) in enumerate(cols):
            ax = axes[r, c]
            ax.imshow(frames[idx, -1], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(VIEW_TITLES.get(name, name), fontsize=8)
            if c == 0:
                ax.set_ylabel(f"{label} {ids[idx]} {cams[idx]}", fontsize=7)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name
