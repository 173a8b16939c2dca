"""``results.md`` and the PNG figures of ``anonreid evaluate``, from its results dictionary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from anonreid.models.evaluation.intervals import BREACH, INSUFFICIENT, PASS, privacy_state
from anonreid.models.evaluation.protocol import MIN_REID_QUERIES, MIN_TEST_IDENTITIES

PAPER_NOTE = ("paper: Ahmad et al., ICCV 2023, on Event-ReId (real data, ResNet-50, E2VID); ours: the run below "
              "on the synthetic world's test identities")
VIEW_TITLES = {"reference": "reference frame", "raw": "E_rec(raw)", "anonymized": "E_rec(anonymized)",
               "inversion": "inversion attack", "adaptive": "adaptive attacker",
               "finetuned": "fine-tuned E_rec", "linear": "linear inverse (floor)", "identity": "direct identity attack"}


# ----------------------------------------------------------------------------------------------- formatting


def pct(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f}"


def est_pct(e: dict[str, Any] | None) -> str:
    """``value [lo, hi]`` in percent from an Estimate dict."""
    if not e or e.get("value") is None or not np.isfinite(e["value"]):
        return "n/a"
    return f"{100 * e['value']:.1f} [{100 * e['ci_low']:.1f}, {100 * e['ci_high']:.1f}]"


def est(e: dict[str, Any] | None, digits: int = 3) -> str:
    if not e or e.get("value") is None or not np.isfinite(e["value"]):
        return "n/a"
    return f"{e['value']:.{digits}f} [{e['ci_low']:.{digits}f}, {e['ci_high']:.{digits}f}]"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _ret_cells(r: dict[str, Any] | None) -> list[str]:
    if not r:
        return ["n/a"] * 5
    return [est_pct(r["rank1"]), pct(r["rank5"]), pct(r["rank10"]), est_pct(r["mAP"]),
            f"{pct(r['chance']['rank1'])} / {pct(r['chance']['mAP'])}"]


def _r1(r: dict[str, Any] | None) -> str:
    return "n/a" if not r else f"{est_pct(r['rank1'])} (chance {pct(r['chance']['rank1'])})"


# -------------------------------------------------------------------------------------------------- markdown


def write_markdown(res: dict[str, Any]) -> str:
    """The human-readable report: every table with CIs, chance levels and the paper's numbers."""
    p = res["paper"]
    t = res["test"]
    out = [f"# Evaluation of `{res['run_dir']}` ({res['preset']})", "", "Command:", "", "```",
           res.get("command") or "(library call)", "```", "",
           f"Dataset: {res['dataset']} `{res['data']}`; {t['clips']} test clips of {t['identities']} identities, "
           f"cameras {', '.join(t['cameras'])}; clips of {t['clip_len']} windows on {t['tile_hw']} tiles, at most "
           f"{t['clips_per_pass']} per pass; device {res['device']}; {res['wall_s']} s.", "",
           "Numbers are percentages (SSIM/PSNR/AUC excepted) with 95% intervals that treat each identity as one "
           "independent unit: rank-1 exact Clopper–Pearson (widened by the design effect when an identity's queries "
           "are correlated), AUC clustered DeLong (logit), mAP / SSIM / PSNR identity bootstrap (BCa), each widened "
           "to an exact bound where it cannot vary (anonreid.models.evaluation.intervals); chance = the exact "
           "expectation of a random ranking over the same query/gallery ids after the Market-1501 exclusions; "
           f"floor = what an attacker scores without any appearance. {PAPER_NOTE}.", ""]
    out += protocol_lines(res.get("protocol"))
    rec = res["reconstruction"]
    out += ["## Table 2: reconstruction attack (SSIM and PSNR, lower = more private)", ""]
    if "missing" in rec:
        out += [f"Not available: {rec['missing']}.", ""]
    else:
        out += person_region_table(rec)
        rows = [[VIEW_TITLES.get(v, v), est(r["ssim"]), est(r["psnr"], 2), f"{r['ssim_floor']:.3f} / {r['psnr_floor']:.2f}",
                 str(p["ssim"].get(v, "")), str(p["psnr"].get(v, ""))] for v, r in rec.items()]
        out += ["Whole frame (background-dominated: the static background carries no events and every reconstruction, "
                "raw included, is compared with it; these rows say little about the person):", "",
                table(["input", "SSIM", "PSNR (dB)", "flat-grey floor SSIM / PSNR", "paper SSIM", "paper PSNR"], rows), ""]
    out += ["## Table 3: anonymization vs event encryption (75% of events; Du et al. 2021)", ""]
    enc = res.get("encryption")
    reid_gt = res["reid"].get("gt", {})
    rows = []
    def row3(name: str, recon: dict[str, Any] | None, reid: dict[str, Any] | None, retr: dict[str, Any] | None) -> list[str]:
        return [name, est(recon["ssim"]) if recon else "n/a", est(recon["psnr"], 2) if recon else "n/a",
                est_pct(reid["rank1"]) if reid else "n/a", _r1(retr)]
    rows.append(row3("no privacy", rec.get("raw"), reid_gt.get("raw"), res["retrieval"].get("enrollment->raw")))
    if enc:
        for name, r in enc.items():
            rows.append(row3(f"chaotic {name}", r.get("reconstruction"), r.get("reid"), r.get("retrieval")))
    rows.append(row3("anonymization (ours)", rec.get("anonymized"), reid_gt.get("anonymized"),
                     res["retrieval"].get("enrollment->anonymized")))
    out += [table(["method", "SSIM", "PSNR", "ReId rank-1", "retrieval rank-1 (enrollment query)"], rows), ""]
    if enc:
        out += ["Keys: " + "; ".join(f"{k}: `{v['transform']}`" for k, v in enc.items())
                + " (logistic map r = 3.99, see anonreid.events.encryption). ReId on encrypted events uses the raw-event "
                "ReId model; retrieval queries are enrollment photos against E_rec reconstructions of each stream.", ""]
    else:
        out += ["Encryption baselines not run (--no-encryption).", ""]
    protocol = res["test"].get("reid_protocol", "query = one clip per identity and camera")
    out += [f"## Table 4: person ReId (Market-1501; {protocol})", ""]
    rows = []
    for boxes in ("gt", "detected"):
        for v in ("raw", "anonymized"):
            r = res["reid"].get(boxes, {}).get(v)
            if r is not None:
                paper = f"{p['reid_rank1'][v]} / {p['reid_mAP'][v]}" if boxes == "gt" else ""
                rows.append([f"{v} ({'ground-truth' if boxes == 'gt' else 'detected'} boxes)", *_ret_cells(r),
                             str(r["num_queries"]), str(r["num_queries_without_match"]), paper])
    out += [table(["input", "rank-1", "rank-5", "rank-10", "mAP", "chance R1 / mAP", "queries", "no match",
                   "paper R1 / mAP"], rows), ""]
    if "raw_missing" in res["reid"]:
        out += [f"No raw row: {res['reid']['raw_missing']}.", ""]
    if "detection_recall" in res["reid"]:
        out += [f"Detected boxes: the event-activity detector (anonreid.nodes.detection), matched to the ground truth "
                f"at IoU >= 0.3; found in {pct(res['reid']['detection_recall'])}% of the clips' last windows.", ""]
    out += ["## Retrieval attack (the attacker's appearance ReId model)", ""]
    rows = [[k.replace("->", " → "), *_ret_cells(r)] for k, r in res["retrieval"].items()]
    out += [table(["query → gallery", "rank-1", "rank-5", "rank-10", "mAP", "chance R1 / mAP"], rows), "",
            f"Paper: enrollment → raw {p['retrieval_rank1']['raw']}, → anonymized {p['retrieval_rank1']['anonymized']} "
            "(rank-1).", ""]
    out += ["## Table 5: loss ablation (α utility, β privacy, γ ReId)", ""]
    rows = []
    for r in res["ablation"].values():
        w = f"α={r['alpha']:g} β={r['beta']:g} γ={r['gamma']:g}"
        if "missing" in r:
            rows.append([w, "missing", "", "", "", ""])
            continue
        recon = r.get("reconstruction")
        rows.append([w, est(recon["ssim"]) if recon else "n/a", est(recon["psnr"], 2) if recon else "n/a",
                     est_pct(r["reid"]["rank1"]), est_pct(r["reid"]["mAP"]), _r1(r.get("retrieval"))])
    out += [table(["weights", "SSIM", "PSNR", "ReId rank-1", "ReId mAP", "retrieval rank-1"], rows), ""]
    out += ["## Table 6: inversion attack (E_rec(E_inv(E_an(X))))", ""]
    rows = [[k.replace("->", " → "), *_ret_cells(res["retrieval"].get(k))]
            for k in ("enrollment->inversion", "raw->inversion") if k in res["retrieval"]]
    out += [table(["query → gallery", "rank-1", "rank-5", "rank-10", "mAP", "chance R1 / mAP"], rows) if rows
            else "missing: the run has no inversion attacker (stage inv)", "",
            f"Paper: inversion rank-1 {p['inversion_rank1']}.", ""]
    out += ["## Table 7: adaptive attacker (E_rec retrained on anonymized events)", ""]
    a = rec.get("adaptive") if "missing" not in rec else None
    if "adaptive" in res["face"] or a is not None or "enrollment->adaptive" in res["retrieval"]:
        out += [table(["SSIM", "PSNR", "retrieval rank-1 (enrollment)", "retrieval rank-1 (raw reconstruction)"],
                      [[est(a["ssim"]) if a else "n/a", est(a["psnr"], 2) if a else "n/a",
                        _r1(res["retrieval"].get("enrollment->adaptive")), _r1(res["retrieval"].get("raw->adaptive"))]]), ""]
    else:
        out += ["missing: the run has no adaptive attacker (stage adaptive)", ""]
    out += ["## Face verification (faces of reference frames / reconstructions vs enrollment photos)", ""]
    rows = [[VIEW_TITLES.get(k, k), est(f["auc"]), "0.500", str(f["num_genuine"]), str(f["num_impostor"]),
             str(p["face_auc"].get(k, ""))] for k, f in res["face"].items() if f]
    out += [table(["probe faces", "ROC AUC", "chance", "genuine pairs", "impostor pairs", "paper"], rows) if rows
            else "not available (no enrollment photos or no face model)", "",
            f"Face embedder: {res['attacker']['face_embedder']}.", ""]
    out += strongest_attacks(res)
    out += ["## Against the paper's story (automatic checks)", "",
            "Every privacy check compares the 95% interval's *upper bound* with the limit: it holds when the upper "
            "bound is at or under it, does not hold when the lower bound is over it (or the interval, narrower than "
            "the margin, still reaches over it), and is not shown while the interval straddles the limit and is "
            "wider than the margin (insufficient evidence).", ""]
    out += [f"- {line}" for line in story_checks(res)] + [""]
    if res.get("figures"):
        out += ["## Figures", ""] + [f"![{name}]({name})" for name in res["figures"]] + [""]
    return "\n".join(out)


#: privacy limits of the automatic checks: rank-1 within MARGIN of chance, face AUC at most FACE_AUC_MAX,
#: person-region SSIM at most the best no-appearance floor (resolution SSIM_RESOLUTION)
MARGIN, FACE_AUC_MAX, SSIM_RESOLUTION = 0.05, 0.60, 0.02
STATE_WORDS = {PASS: "holds", BREACH: "DOES NOT HOLD", INSUFFICIENT: "not shown (insufficient evidence)"}
NOT_ATTACKS = ("raw", "reference")  # views that are baselines, not attacks on the anonymized stream


def _attacked(key: str) -> tuple[str, str] | None:
    """(query, view) of a retrieval key ``query->view`` whose view is an attack on the anonymized stream."""
    query, _, view = key.partition("->")
    return None if view in NOT_ATTACKS or not view else (query, view)


def privacy_checks(res: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], float]]:
    """(what, metric, estimate, limit) of every privacy claim on these results: each attack's rank-1
    against chance + MARGIN, face AUC against FACE_AUC_MAX, person-region SSIM against the best floor."""
    checks = []
    for key, r in res["retrieval"].items():
        if r and _attacked(key):
            query, view = _attacked(key)  # type: ignore[misc]
            checks.append((f"{query} queries → {VIEW_TITLES.get(view, view)}", "rank-1", r["rank1"],
                           r["chance"]["rank1"] + MARGIN))
    for view, f in res["face"].items():
        if f and view not in NOT_ATTACKS:
            checks.append((f"face verification on {VIEW_TITLES.get(view, view)}", "AUC", f["auc"], FACE_AUC_MAX))
    rec = res["reconstruction"]
    for view, r in ({} if "missing" in rec else rec).items():
        person = r.get("person")
        if person and view not in NOT_ATTACKS:
            floor = max(person["floors"]["flat"]["ssim"], person["floors"]["silhouette"]["ssim"])
            checks.append((f"person-region SSIM of {VIEW_TITLES.get(view, view)} (limit: the best floor)", "SSIM",
                           person["ssim"], floor))
    return checks


def check_state(metric: str, e: dict[str, Any], limit: float) -> str:
    resolution = SSIM_RESOLUTION if metric == "SSIM" else MARGIN
    return privacy_state(e["ci_low"], e["ci_high"], limit, resolution)


def _fmt_est(metric: str, e: dict[str, Any]) -> str:
    return est_pct(e) if metric == "rank-1" else est(e)


def _fmt_limit(metric: str, limit: float) -> str:
    return pct(limit) if metric == "rank-1" else f"{limit:.3f}"


def story_checks(res: dict[str, Any], margin: float = MARGIN) -> list[str]:
    """Each claim checked on these numbers: "holds" / "DOES NOT HOLD" / "not shown (insufficient
    evidence)" with the values; privacy claims by the interval's upper bound (:func:`privacy_state`), and
    none at all when the protocol refused a verdict (the run saw test identities)."""
    lines = []
    rec, ret, reid = res["reconstruction"], res["retrieval"], res["reid"].get("gt", {})

    def verdict(ok: bool) -> str:
        return "holds" if ok else "DOES NOT HOLD"

    proto = res.get("protocol") or {}
    if proto:
        enough = proto["test_identities"] >= MIN_TEST_IDENTITIES and (proto.get("reid_queries") or 0) >= MIN_REID_QUERIES
        lines.append(f"the evaluation has the power issue #16 asks for (at least {MIN_TEST_IDENTITIES} test identities "
                     f"and {MIN_REID_QUERIES} ReId queries; here {proto['test_identities']} and "
                     f"{proto.get('reid_queries')}): {verdict(enough)}")
    for metric, unit, digits in (("ssim", "", 3), ("psnr", " dB", 2)):
        raw, anon = rec.get("raw", {}).get(metric), rec.get("anonymized", {}).get(metric)
        if raw and anon:
            clear = anon["ci_high"] < raw["ci_low"]
            lines.append(f"whole-frame {metric.upper()} of reconstructions clearly lower from anonymized than from raw "
                         f"events ({anon['value']:.{digits}f}{unit} vs {raw['value']:.{digits}f}{unit}, 95% intervals "
                         f"apart): {verdict(clear)}")
    strong = ret.get("enrollment->raw")
    if strong:
        above = strong["rank1"]["ci_low"] > strong["chance"]["rank1"]
        lines.append(f"the retrieval attacker works on raw reconstructions (rank-1 {est_pct(strong['rank1'])} vs "
                     f"chance {pct(strong['chance']['rank1'])}, lower bound above chance): {verdict(above)}"
                     + ("" if above else " (so the privacy checks below are not conclusive)"))
    if reid.get("raw") and reid.get("anonymized"):
        drop = reid["raw"]["rank1"]["value"] - reid["anonymized"]["rank1"]["value"]
        lines.append(f"ReId rank-1 drops by at most {100 * margin:.0f} points under anonymization (point estimates "
                     f"{est_pct(reid['raw']['rank1'])} -> {est_pct(reid['anonymized']['rank1'])}): {verdict(drop <= margin)}")
    if proto and not proto.get("verdict", True):
        return [*lines, f"privacy: NO VERDICT: {proto.get('reason', '')}"]
    for what, metric, e, limit in privacy_checks(res):
        state = check_state(metric, e, limit)
        lines.append(f"{what}: {metric} {_fmt_est(metric, e)}, upper bound at most {_fmt_limit(metric, limit)}: "
                     f"{STATE_WORDS[state]}")
    return lines or ["nothing to check (no anonymizer or no reference frames in this run)"]


def verdicts_json(res: dict[str, Any]) -> dict[str, Any]:
    """The automatic checks for results.json: every privacy check with its interval, limit and state
    (judged on the upper bound), the story lines as results.md prints them, and the protocol's permission."""
    proto = res.get("protocol") or {}
    given = proto.get("verdict", True) is not False
    checks = [{"what": what, "metric": metric, "value": e["value"], "ci": [e["ci_low"], e["ci_high"]],
               "interval_method": e.get("method", ""), "limit": limit, "compared": "upper bound <= limit",
               "state": check_state(metric, e, limit)} for what, metric, e, limit in privacy_checks(res)] if given else []
    return {"privacy_verdict_given": given, "reason": "" if given else proto.get("reason", ""),
            "privacy_checks": checks, "lines": story_checks(res)}


def strongest_checks(res: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any], float]]:
    """The strongest attack per privacy metric: ``{key: (what, metric, estimate, limit)}``, keys
    ``rank-1 (<query> queries)``, ``AUC`` and ``SSIM``; strongest = the highest upper bound over its
    limit (rank-1 limits differ by chance, so this is how far the upper bound reaches over chance + MARGIN;
    among attacks with one chance level, simply the highest upper bound). Checks without a finite upper
    bound are left out. The numbers only: the protocol's permission is the caller's."""
    best: dict[str, tuple[str, str, dict[str, Any], float]] = {}
    for what, metric, e, limit in privacy_checks(res):
        if e.get("ci_high") is None or not np.isfinite(e["ci_high"]):
            continue
        key = f"{metric} ({what.split(' queries')[0]} queries)" if metric == "rank-1" else metric
        if key not in best or e["ci_high"] - limit > best[key][2]["ci_high"] - best[key][3]:
            best[key] = (what, metric, e, limit)
    return best


def strongest_attacks(res: dict[str, Any]) -> list[str]:
    """The strongest attack per privacy metric (:func:`strongest_checks`), with its verdict."""
    if (res.get("protocol") or {}).get("verdict", True) is False:
        return []
    best = strongest_checks(res)
    if not best:
        return []
    rows = [[key, what, _fmt_est(metric, e), _fmt_limit(metric, limit), STATE_WORDS[check_state(metric, e, limit)]]
            for key, (what, metric, e, limit) in best.items()]
    return ["## Strongest attack per metric", "",
            table(["metric", "attack", "value [95% interval]", "limit on the upper bound", "verdict"], rows), ""]


def protocol_lines(proto: dict[str, Any] | None) -> list[str]:
    """The protocol paragraph: split sizes, queries, where the run validated, and the verdict permission."""
    if not proto:
        return []
    return ["## Protocol", "",
            f"Test identities: {proto['test_identities']}; the run trained on {proto.get('train_identities')} identities "
            f"and validated on {proto.get('validation')}; training worlds {', '.join(proto.get('training_worlds', []))}. "
            f"ReId queries: {proto.get('reid_queries')} (one per identity and camera); enrollment queries: "
            f"{proto.get('enrollment_queries')}. Privacy verdict: "
            + ("given (no test identity was seen in training or validation)." if proto.get("verdict")
               else f"NONE ({proto.get('reason')})."), ""]


def person_region_table(rec: dict[str, Any]) -> list[str]:
    """SSIM / PSNR on the person (ground-truth box, padded 10%) beside the two no-appearance floors."""
    rows = []
    for v, r in rec.items():
        person = r.get("person")
        if person:
            fl = person["floors"]
            rows.append([VIEW_TITLES.get(v, v), est(person["ssim"]), est(person["psnr"], 2),
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


def write_figures(res: dict[str, Any], views: dict[str, np.ndarray], reference: np.ndarray | None, test: Any,
                  out_dir: Path) -> list[str]:
    """retrieval_bars.png, reid_bars.png, image_grid.png, face_roc.png (those with data); returns names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    settings = [("enrollment->raw", "enrollment photo\nvs raw recon."), ("raw->anonymized", "raw recon.\nvs anon. recon."),
                ("enrollment->anonymized", "enrollment photo\nvs anon. recon.")]
    present = [(k, label) for k, label in settings if res["retrieval"].get(k)]
    if present:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        vals = [res["retrieval"][k]["rank1"] for k, _ in present]
        x = np.arange(len(present))
        ax.bar(x, [100 * v["value"] for v in vals], color="#4477aa",
               yerr=[[100 * (v["value"] - v["ci_low"]) for v in vals], [100 * (v["ci_high"] - v["value"]) for v in vals]],
               capsize=4, label="attacker rank-1")
        ax.scatter(x, [100 * res["retrieval"][k]["chance"]["rank1"] for k, _ in present], color="#cc3311", marker="_",
                   s=900, zorder=3, label="chance")
        ax.set_xticks(x, [label for _, label in present], fontsize=8)
        ax.set_ylabel("rank-1 (%)")
        ax.set_ylim(0, 100)
        ax.set_title("Retrieval attack")
        ax.legend(fontsize=8)
        names.append(_save(fig, out_dir / "retrieval_bars.png"))
    groups = [(b, v) for b in ("gt", "detected") for v in ("raw", "anonymized") if res["reid"].get(b, {}).get(v)]
    if groups:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        metrics = ["rank1", "rank5", "rank10", "mAP"]
        width = 0.8 / len(groups)
        for i, (b, v) in enumerate(groups):
            r = res["reid"][b][v]
            vals = [r["rank1"]["value"], r["rank5"], r["rank10"], r["mAP"]["value"]]
            ax.bar(np.arange(4) + i * width, [100 * x for x in vals], width, label=f"{v} ({b} boxes)")
        ax.set_xticks(np.arange(4) + width * (len(groups) - 1) / 2, metrics)
        ax.set_ylabel("%")
        ax.set_ylim(0, 100)
        ax.set_title("ReId: raw vs anonymized events")
        ax.legend(fontsize=8)
        names.append(_save(fig, out_dir / "reid_bars.png"))
    cols = ([("reference", reference)] if reference is not None else []) + [(k, v) for k, v in views.items()]
    if cols:
        ids = test.ids
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
                    ax.set_ylabel(f"id {ids[idx]} {test.cams[idx]}", fontsize=7)
        names.append(_save(fig, out_dir / "image_grid.png"))
    faces = {k: f for k, f in res["face"].items() if f}
    if faces:
        fig, ax = plt.subplots(figsize=(4.2, 4))
        for k, f in faces.items():
            ax.plot(f["roc_fpr"], f["roc_tpr"], label=f"{VIEW_TITLES.get(k, k)} (AUC {f['auc']['value']:.2f})")
        ax.plot([0, 1], [0, 1], "k:", lw=1, label="chance")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title("Face verification attack")
        ax.legend(fontsize=7)
        names.append(_save(fig, out_dir / "face_roc.png"))
    return names


def _save(fig: Any, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name
