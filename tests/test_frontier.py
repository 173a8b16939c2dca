"""``anonreid frontier``: the privacy–utility frontier of several evaluated runs (issue #16), on results
dictionaries built by hand in the format ``anonreid evaluate`` writes (test_eval_end_to_end runs it on a
real one)."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from anonreid.models.evaluation.frontier import (
    Frontier,
    FrontierInputError,
    build_frontier,
    frontier_markdown,
    frontier_point,
    load_results,
    mark_frontier,
)
from anonreid.models.evaluation.report import MARGIN
from anonreid.orchestration.cli import app

PAPER = {"reid_rank1": {"raw": 63.7, "anonymized": 59.2}, "retrieval_rank1": {"raw": 67.8, "anonymized": 8.9},
         "inversion_rank1": 9.1, "face_auc": {"anonymized": 0.53}}


def _est(value: float, lo: float, hi: float, n: int = 40) -> dict[str, Any]:
    return {"value": value, "ci_low": lo, "ci_high": hi, "n": n, "method": "clopper-pearson", "clusters": n}


def _ret(value: float, lo: float, hi: float, chance: float) -> dict[str, Any]:
    return {"rank1": _est(value, lo, hi), "rank5": value, "rank10": value, "mAP": _est(value, lo, hi),
            "chance": {"rank1": chance, "rank5": 0.1, "rank10": 0.2, "mAP": 0.05}, "num_queries": 40}


def _results(beta: float | None = 1.0, anon: float = 0.70, raw: float | None = 0.74, auc_hi: float = 0.58,
             retrieval: dict[str, Any] | None = None, verdict: bool = True) -> dict[str, Any]:
    """A results.json of `anonreid evaluate` with these numbers (40 test identities, chance 2.5 %)."""
    reid = {"anonymized": _ret(anon, anon - 0.1, anon + 0.08, 0.04)}
    if raw is not None:
        reid["raw"] = _ret(raw, raw - 0.1, raw + 0.08, 0.04)
    res: dict[str, Any] = {
        "run_dir": "runs/x", "preset": "minmax", "paper": PAPER,
        "reid": {"gt": reid},
        "retrieval": retrieval if retrieval is not None else {
            "enrollment->reference": _ret(0.9, 0.8, 0.96, 0.025),  # baselines, never the attacker
            "enrollment->raw": _ret(0.6, 0.44, 0.75, 0.025),
            "raw->raw": _ret(0.8, 0.7, 0.9, 0.025),
            "enrollment->anonymized": _ret(0.025, 0.001, 0.074, 0.025),
            "enrollment->adaptive": _ret(0.05, 0.006, 0.060, 0.025),
        },
        "face": {"reference": {"auc": _est(0.9, 0.85, 0.95)}, "raw": {"auc": _est(0.8, 0.7, 0.99)},
                 "anonymized": {"auc": _est(0.52, 0.45, auc_hi)}, "adaptive": None},
        "reconstruction": {"missing": "no reference frames"},
        "protocol": {"test_identities": 40, "reid_queries": 160, "verdict": verdict,
                     "reason": "" if verdict else "2 of the 40 test identities were seen in validation"},
    }
    if beta is not None:
        res["joint"] = {"alpha": 1.0, "beta": beta, "gamma": 1.0, "minmax": True}
    return res


def _write(path: Path, res: dict[str, Any]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").write_text(json.dumps(res))
    return path / "results.json"


def test_strongest_attack_is_the_highest_upper_bound_over_chance_not_the_highest_point_estimate() -> None:
    retrieval = {
        "enrollment->raw": _ret(0.9, 0.8, 0.96, 0.025),  # raw reconstructions: a baseline, not an attack
        "enrollment->adaptive": _ret(0.30, 0.20, 0.42, 0.025),  # the highest point estimate
        "enrollment->inversion": _ret(0.25, 0.08, 0.50, 0.025),  # a lower estimate, a higher upper bound
        "raw->finetuned": _ret(0.35, 0.30, 0.55, 0.10),  # the highest upper bound, but 45 over chance (< 47.5)
        "enrollment->identity": None,  # an attack the run did not have
    }
    p = frontier_point(_results(retrieval=retrieval), "run")
    assert p.attacker is not None
    assert p.attacker.what == "enrollment queries → inversion attack"
    assert (p.attacker.rank1.value, p.attacker.rank1.ci_high, p.attacker.chance) == (0.25, 0.50, 0.025)
    assert p.attacker.limit == pytest.approx(0.075) and p.attacker.state == "breach"  # its lower bound 8 > 7.5
    # the direct identity attack competes too
    retrieval["enrollment->identity"] = _ret(0.2, 0.1, 0.6, 0.025)
    p = frontier_point(_results(retrieval=retrieval), "run")
    assert p.attacker is not None and p.attacker.what == "enrollment queries → direct identity attack"
    assert p.face_what == "face verification on E_rec(anonymized)" and p.face_auc is not None
    assert p.face_auc.ci_high == 0.58  # raw and reference frames are baselines, not attacks


def _met(res: dict[str, Any]) -> dict[str, bool | None]:
    return {t.name: t.met for t in frontier_point(res, "run").targets}


def test_targets_hold_at_their_boundaries_and_fail_just_past_them() -> None:
    chance = 0.025
    at = _results(anon=0.60, raw=0.65, auc_hi=0.60, retrieval={
        "enrollment->adaptive": _ret(0.05, 0.01, chance + MARGIN, chance)})  # the limit, computed as the report does
    assert _met(at) == {"strongest attacker rank-1": True, "face AUC": True, "ReId drop": True,
                        "anonymized ReId rank-1": True}  # 65.0 -> 60.0 is a drop of 5 points, not 5.000000000000004
    assert frontier_point(at, "run").meets_targets
    past = _results(anon=0.499, raw=0.55, auc_hi=0.6001, retrieval={
        "enrollment->adaptive": _ret(0.05, 0.01, chance + MARGIN + 1e-4, chance)})
    assert _met(past) == {"strongest attacker rank-1": False, "face AUC": False, "ReId drop": False,
                          "anonymized ReId rank-1": False}
    assert not frontier_point(past, "run").meets_targets
    assert _met(_results(anon=0.5, raw=0.5501))["ReId drop"] is False  # 5.01 points
    # without a privacy verdict the privacy targets are not judged (and the run does not meet the targets)
    refused = frontier_point(_results(verdict=False), "run")
    assert [t.met for t in refused.targets] == [None, None, True, True] and not refused.meets_targets
    assert "no privacy verdict" in refused.targets[0].note and "seen in validation" in refused.reason
    no_raw = frontier_point(_results(raw=None), "run")
    assert no_raw.reid_raw is None and no_raw.targets[2].met is None and not no_raw.meets_targets


def test_bad_input_exits_2_naming_the_file_and_the_key(tmp_path: Path) -> None:
    good = _write(tmp_path / "good", _results())

    def run(*args: str) -> str:
        result = CliRunner().invoke(app, ["frontier", *args, "--out", str(tmp_path / "out")])
        assert result.exit_code == 2, result.output
        return result.output

    assert f"error: {tmp_path / 'absent'}: no such file" in run(str(tmp_path / "absent"))
    (tmp_path / "empty").mkdir()
    assert f"error: {tmp_path / 'empty' / 'results.json'}: no such file" in run(str(tmp_path / "empty"))
    no_reid = _results()
    del no_reid["reid"]["gt"]["anonymized"]
    out = run(str(good), str(_write(tmp_path / "no-reid", no_reid)))
    assert str(tmp_path / "no-reid" / "results.json") in out and "'reid.gt.anonymized'" in out
    no_chance = _results()
    del no_chance["retrieval"]["enrollment->adaptive"]["chance"]
    out = run(str(_write(tmp_path / "no-chance", no_chance)))
    assert "no-chance/results.json: missing key 'retrieval.enrollment->adaptive.chance'" in out
    bad_value = _results()
    bad_value["reid"]["gt"]["anonymized"]["rank1"]["ci_high"] = "high"
    assert "'reid.gt.anonymized.rank1.ci_high' is 'high', not a finite number" in run(
        str(_write(tmp_path / "bad-value", bad_value)))
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "results.json").write_text("not json")
    assert "text/results.json: not a JSON file" in run(str(tmp_path / "text"))
    assert "--label needs NAME=PATH, got 'good'" in run("--label", "good")
    assert "two runs named 'good'" in run(str(good), "--label", f"good={good}")
    assert "at least one results.json" in run()
    assert not (tmp_path / "out").exists()
    with pytest.raises(FrontierInputError, match="'retrieval' is"):
        load_results(_write(tmp_path / "null", {**_results(), "retrieval": None}))


def test_command_writes_a_png_that_opens_and_a_json_that_round_trips(tmp_path: Path) -> None:
    from PIL import Image

    private = _results(beta=4.0, anon=0.55, raw=0.58, retrieval={"enrollment->adaptive": _ret(0.03, 0.005, 0.07, 0.025)})
    useful = _results(beta=0.5, anon=0.72, retrieval={"enrollment->adaptive": _ret(0.30, 0.17, 0.46, 0.025)})
    dominated = _results(beta=1.0, anon=0.60, retrieval={"enrollment->adaptive": _ret(0.35, 0.21, 0.51, 0.025)})
    shipped = copy.deepcopy(dominated)
    del shipped["joint"]  # results written before the weights were recorded: named by the user
    runs = {"beta-4": private, "beta-0.5": useful, "beta-1": dominated}
    paths = [str(_write(tmp_path / name, res).parent) for name, res in runs.items()]
    shipped_path = _write(tmp_path / "docs" / "results", shipped)
    out = tmp_path / "frontier"
    result = CliRunner().invoke(app, ["frontier", *paths, "--label", f"shipped={shipped_path}", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with Image.open(out / "frontier.png") as im:
        im.verify()
        assert im.format == "PNG" and im.size[0] > 400 and im.size[1] > 300
    fr = Frontier.from_dict(json.loads((out / "frontier.json").read_text()))
    assert fr == build_frontier([(Path(p).name, Path(p)) for p in paths] + [("shipped", shipped_path)], fr.command)
    assert fr.command.startswith("anonreid frontier ") and "--label shipped=" in fr.command
    assert [(p.name, p.beta, p.on_frontier) for p in fr.points] == [
        ("beta-4", 4.0, True), ("beta-0.5", 0.5, True), ("beta-1", 1.0, False), ("shipped", None, False)]
    assert [p.meets_targets for p in fr.points] == [True, False, False, False]
    assert fr.paper is not None and (fr.paper.reid, fr.paper.reid_raw, fr.paper.attacker_rank1) == (0.592, 0.637, 0.091)
    assert fr.paper.attacker_what == "inversion attack" and fr.paper.label == "paper (Event-ReId, real data)"
    md = (out / "frontier.md").read_text()
    assert "| beta-4 | 4 | same day | 55.0 [45.0, 63.0] | 58.0 [48.0, 66.0] | enrollment queries → adaptive attacker |" in md
    assert "| shipped | n/a | same day |" in md and "paper (Event-ReId, real data): anonymized ReId rank-1 59.2" in md


def test_paper_without_an_attacker_rank1_is_a_reid_line_only(tmp_path: Path) -> None:
    res = _results()
    res["paper"] = {"reid_rank1": {"raw": 63.7, "anonymized": 59.2}}
    fr = build_frontier([("run", _write(tmp_path / "run", res))])
    assert fr.paper is not None and fr.paper.attacker_rank1 is None and fr.paper.reid == 0.592
    from anonreid.models.evaluation.frontier import write_frontier

    write_frontier(fr, tmp_path / "out")
    assert "no attacker rank-1 reported" in (tmp_path / "out" / "frontier.md").read_text()
    assert (tmp_path / "out" / "frontier.png").stat().st_size > 1000


def test_a_strongest_attack_too_small_to_show_privacy_says_so() -> None:
    """0 of 40 enrollment queries: the upper bound 8.8 % misses chance + 5 = 7.5 %, and the target's note
    says that no anonymizer could pass at this size (at chance: 1 hit in 40, upper bound 13.2 %)."""
    chance = 0.025
    rank1 = {**_est(0.0, 0.0, 0.088), "n_eff": 40.0}
    small = _results(retrieval={"enrollment->adaptive": {**_ret(0.0, 0.0, 0.088, chance), "rank1": rank1}})
    target = frontier_point(small, "run").targets[0]
    assert target.met is False and "cannot show it" in target.note and "13.2" in target.note
    big = {**_est(0.02, 0.008, 0.049), "n_eff": 320.0}  # at chance its upper bound would be 4.9 %: no note
    large = _results(retrieval={"adaptive->enrollment": {**_ret(0.02, 0.008, 0.049, chance), "rank1": big}})
    target = frontier_point(large, "run").targets[0]
    assert target.met is True and target.note == ""
    # the large world's enrollment direction: 100 queries at chance 1 % can pass, but only with 0 or 1 hit
    hundred = {**_est(0.0, 0.0, 0.036, n=100), "n_eff": 100.0}
    world = _results(retrieval={"enrollment->adaptive": {**_ret(0.0, 0.0, 0.036, 0.01), "rank1": hundred}})
    target = frontier_point(world, "run").targets[0]
    assert target.met is True and "low power" in target.note and "probability 0.74" in target.note, target.note


def test_runs_attacked_with_photos_of_another_day_are_a_frontier_of_their_own() -> None:
    """A run judged against enrollment photos of another day (another outfit: biometric identification) is
    not dominated by, nor dominates, runs judged against same-day photos (identification by clothing)."""
    same = _results(beta=1.0, anon=0.60, retrieval={"enrollment->adaptive": _ret(0.35, 0.21, 0.51, 0.025)})
    other = copy.deepcopy(same)
    other["attacker"] = {"enrollment_day": 1}
    better = _results(beta=2.0, anon=0.70, retrieval={"enrollment->adaptive": _ret(0.10, 0.05, 0.20, 0.025)})
    points = [frontier_point(r, n) for n, r in (("same", same), ("other", other), ("better", better))]
    marked = {p.name: p for p in mark_frontier(points)}
    assert not marked["same"].on_frontier and marked["better"].on_frontier  # same day: dominated
    assert marked["other"].on_frontier and marked["other"].photos == "another day (1)"
    bad = copy.deepcopy(same)
    bad["attacker"] = {"enrollment_day": "monday"}
    with pytest.raises(FrontierInputError, match="enrollment_day"):
        frontier_point(bad, "bad", "runs/bad/results.json")
    several = copy.deepcopy(other)
    several["attacker"]["photo_days"] = 6  # a stronger attacker, the same threat
    assert frontier_point(several, "several").photos == "another day (1); attackers saw 6 days"
    bad["attacker"] = {"enrollment_day": 1, "photo_days": 0}
    with pytest.raises(FrontierInputError, match="photo_days"):
        frontier_point(bad, "bad", "runs/bad/results.json")


def test_a_shown_breach_is_the_strongest_attack_over_one_that_could_not_be_tested() -> None:
    """An attack whose control failed may reach further (a wide interval) than one that clearly breaks
    privacy; the point reports the breach, not "not testable"."""
    res = _results(beta=1.0, anon=0.60, raw=0.62, retrieval={
        "enrollment->reference": _ret(0.06, 0.01, 0.12, 0.025),  # this direction's control: not clearly over
        "reference->enrollment": _ret(0.5, 0.4, 0.6, 0.025),  # that direction's: clearly over
        "enrollment->adaptive": _ret(0.10, 0.02, 0.30, 0.025),  # not testable, upper bound 30
        "adaptive->enrollment": _ret(0.20, 0.15, 0.26, 0.025)})  # a breach, upper bound 26
    point = frontier_point(res, "breached")
    assert point.attacker is not None and point.attacker.state == "breach" and point.attacker.control == ""
    assert point.targets[0].met is False


def test_a_strongest_attack_that_fails_its_positive_control_is_not_judged() -> None:
    """An attacker not clearly over the limit even on clean reference frames: its rank-1 under the limit
    is no privacy, so the target is not judged and the run does not meet every target."""
    res = _results(beta=3.0, anon=0.60, raw=0.62, retrieval={
        "enrollment->reference": _ret(0.06, 0.01, 0.12, 0.025),  # the control: not clearly over 7.5
        "enrollment->adaptive": _ret(0.025, 0.001, 0.074, 0.025)})
    point = frontier_point(res, "blind")
    target = point.targets[0]
    assert target.met is None and target.note.startswith("not testable: the same attack without the anonymizer")
    assert not point.meets_targets and point.attacker is not None and point.attacker.control
    res["retrieval"]["enrollment->reference"] = _ret(0.5, 0.34, 0.66, 0.025)  # the attacker sees: judged
    assert frontier_point(res, "sees").targets[0].met is True


def test_a_strongest_attack_over_the_limit_misses_the_target_even_when_it_cannot_be_tested() -> None:
    """The control only stops a pass: an attack whose upper bound is over the limit misses the target on the
    upper bound whether or not its control shows it could see anyone; the note keeps why it is untestable."""
    res = _results(beta=3.0, anon=0.60, raw=0.62, retrieval={
        "enrollment->reference": _ret(0.06, 0.01, 0.12, 0.025),  # the control: not clearly over 7.5
        "enrollment->adaptive": _ret(0.05, 0.02, 0.11, 0.025)})  # upper bound 11 over 7.5
    target = frontier_point(res, "weak but over").targets[0]
    assert target.met is False and target.value == 0.11
    assert target.note.startswith("not testable: the same attack without the anonymizer")


def test_runs_of_one_anonymizer_share_the_strongest_attack_trained_for_it(tmp_path: Path) -> None:
    """Two evaluations of the same anonymizer on the same test clips, one with a weaker training of the
    attacks: the weaker one is judged on the stronger attack (which names the run that trained it), so it
    cannot dominate the other on the frontier; another anonymizer, other test clips or another threat keep
    their own attacks."""
    def run(anon: float, hit: float, hi: float, created: str = "2026-11-26T11:39:54Z", data: str = "data/world_xl",
            day: int = 0) -> dict[str, Any]:
        res = _results(beta=1.0, anon=anon, raw=anon, retrieval={
            "enrollment->reference": _ret(0.5, 0.4, 0.6, 0.025),  # the controls: clearly over the limit
            "enrollment->identity_raw": _ret(0.5, 0.4, 0.6, 0.025),
            "enrollment->identity": _ret(hit, 0.01, hi, 0.025)})
        res["models"] = {"anonymizer": {"created": created, "code_version": "anonreid 0.1.0 git 351e228",
                                        "data_fingerprint": "a04d935382b28b09", "stage": "joint"}}
        res["data"], res["test"] = data, {"identities": 40, "clips": 320, "clips_per_pass": 2}
        res["attacker"] = {"enrollment_day": day}
        return res

    strong = _write(tmp_path / "strong", run(0.61, 0.16, 0.25))
    weak = _write(tmp_path / "weak", run(0.63, 0.02, 0.07))  # passes on its own (7.0 <= 7.5)
    other = _write(tmp_path / "other", run(0.40, 0.02, 0.07, created="2026-12-03T12:28:27Z"))
    elsewhere = _write(tmp_path / "elsewhere", run(0.50, 0.02, 0.07, data="data/world_default"))
    later = _write(tmp_path / "later", run(0.55, 0.02, 0.07, day=1))
    alone = frontier_point(load_results(weak), "weak")
    assert alone.targets[0].met is True and alone.attacker is not None and alone.attacker.run == ""
    fr = build_frontier([("strong", strong), ("weak", weak), ("other", other), ("elsewhere", elsewhere),
                         ("later", later)])
    p = {q.name: q for q in fr.points}
    assert p["weak"].attacker == replace(p["strong"].attacker, run="strong")
    assert p["weak"].targets[0].met is False and p["weak"].targets[0].value == 0.25
    assert p["weak"].reid.value == 0.63 and p["weak"].targets[2:] == alone.targets[2:]  # its own ReId
    assert p["strong"].attacker is not None and p["strong"].attacker.run == ""
    for name in ("other", "elsewhere", "later"):
        assert p[name].attacker is not None and p[name].attacker.rank1.ci_high == 0.07 and p[name].attacker.run == ""
    assert p["weak"].on_frontier and not p["strong"].on_frontier  # now a like-for-like comparison of ReId
    assert Frontier.from_dict(json.loads(json.dumps(fr.as_dict()))) == fr
    assert "(trained in the evaluation of: strong)" in frontier_markdown(fr)


def test_an_upper_bound_computed_twice_is_not_more_private_by_its_last_bit() -> None:
    """The same 19/100 upper bound computed by two evaluations may differ by 1e-16; the run with the higher
    ReId still dominates."""
    a = _results(anon=0.63, retrieval={"enrollment->identity": _ret(0.19, 0.118, 0.28122225556119795, 0.01)})
    b = _results(anon=0.57, retrieval={"enrollment->identity": _ret(0.19, 0.118, 0.28122225556119784, 0.01)})
    marked = {p.name: p for p in mark_frontier([frontier_point(a, "a"), frontier_point(b, "b")])}
    assert marked["a"].on_frontier and not marked["b"].on_frontier
