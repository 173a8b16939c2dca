"""The typed results of ``anonreid evaluate`` (one per table), results.json written from them, results.md
rendered from them, and the attacker's nets read from the training config tree."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from anonreid.models.evaluation.collapse import CollapseVerdict
from anonreid.models.evaluation.intervals import Estimate
from anonreid.models.evaluation.protocol import Protocol
from anonreid.models.evaluation.results import (
    PAPER,
    AblationRow,
    AblationTable,
    AttackRow,
    AttackScores,
    AttacksTable,
    ChanceEstimate,
    EncryptionRow,
    EncryptionTable,
    EvaluatedSetSummary,
    EvaluationResults,
    FaceScore,
    FaceTable,
    ReconstructionScore,
    ReconstructionTable,
    ReidTable,
    RetrievalScore,
    RetrievalTable,
    RunInfo,
    Scores,
)


def _e(value: float, lo: float, hi: float) -> Estimate:
    return Estimate(value, lo, hi, 8, "clopper-pearson", 2)


def _ret(r1: float, lo: float, hi: float, chance: float = 0.25) -> RetrievalScore:
    return RetrievalScore(_e(r1, lo, hi), 0.75, 1.0, _e(0.4, 0.3, 0.5), {"rank1": chance, "mAP": 0.3}, 8, 1, 16)


def _rec(ssim: float) -> ReconstructionScore:
    floors = {"flat": {"ssim": 0.30, "psnr": 9.0}, "silhouette": {"ssim": 0.35, "psnr": 10.0}}
    return ReconstructionScore(_e(ssim, ssim - 0.05, ssim + 0.05), _e(11.0, 10.0, 12.0), 0.2, 8.0,
                               {"ssim": _e(ssim, ssim - 0.02, ssim + 0.02), "psnr": _e(10.0, 9.5, 10.5)}, floors)


def _scores(verdict: bool = True) -> Scores:
    face = FaceScore(_e(0.55, 0.45, 0.65), np.linspace(0, 1, 5), np.linspace(0, 1, 5) ** 0.5, 8, 24)
    return Scores(
        ReconstructionTable({"raw": _rec(0.6), "anonymized": _rec(0.3), "adaptive": _rec(0.5)}),
        ReidTable({"gt": {"raw": _ret(0.875, 0.47, 1.0), "anonymized": _ret(0.75, 0.35, 0.97)}, "detected": {}},
                  "", 0.5),
        RetrievalTable({"enrollment->raw": _ret(1.0, 0.16, 1.0, 0.5), "raw->raw": None,
                        "enrollment->adaptive": _ret(0.5, 0.01, 0.99, 0.5)}),
        FaceTable({"reference": face, "anonymized": None, "adaptive": face}),
        Protocol(2, 3, 1, "held-out training identities", ["world-1"], [], verdict,
                 "" if verdict else "1 of the 2 test identities was seen", 8, 2),
    )


def _results(verdict: bool = True) -> EvaluationResults:
    from anonreid.models.evaluation.report import verdicts

    s = _scores(verdict)
    adaptive = AttackScores(_e(0.5, 0.48, 0.52), "person", ChanceEstimate(_e(0.5, 0.01, 0.99), 0.5), None, None, None)
    attacks = AttacksTable(
        {"adaptive": AttackRow("E_rec' trained on anonymized events from scratch", "e_rec_adaptive", True, None,
                               adaptive, CollapseVerdict("adaptive", True, ["flat output"]))},
        {"ssim": ("adaptive", adaptive.ssim)}, [])  # type: ignore[dict-item]
    info = RunInfo("anonreid evaluate --run r", "r", "world", "w", "tiny", "cpu", {}, {"beta": 1.0},
                   EvaluatedSetSummary(16, 2, ["cam0", "cam1"], 2, 2, [64, 48], True, "query = one clip per identity and camera"),
                   {"appearance": {"crop_hw": (32, 16)}}, "attacker's own face net")
    return EvaluationResults(info, s, EncryptionTable({"scrambling": EncryptionRow("ChaoticScramble()", None, None, None)}),
                             AblationTable({"a0_b0_g1": AblationRow(0.0, 0.0, 1.0, missing="not trained")}),
                             attacks, 1.5, ["face_roc.png"], verdicts(s))


def test_results_json_holds_every_table_in_its_keys_and_reads_back() -> None:
    """results.json is written from the typed results (NaN as null, tuples as lists) in the keys other code
    reads, and the score tables read back from it give the same JSON."""
    res = _results().to_json()
    assert list(res) == ["command", "run_dir", "dataset", "data", "preset", "device", "models", "joint", "test",
                         "attacker", "paper", "reconstruction", "reid", "retrieval", "protocol", "face", "encryption",
                         "ablation", "attacks", "strongest", "attackers_in_training", "wall_s", "figures", "verdicts"]
    assert res["paper"] == PAPER and res["attacker"] == {"appearance": {"crop_hw": [32, 16]},
                                                         "face_embedder": "attacker's own face net", "enrollment_day": 0,
                                                         "photo_days": 1}
    assert res["reid"]["detection_recall"] == 0.5 and "raw_missing" not in res["reid"]
    assert res["retrieval"]["raw->raw"] is None and res["face"]["anonymized"] is None
    assert res["encryption"]["scrambling"] == {"transform": "ChaoticScramble()", "retrieval": None}
    assert res["ablation"]["a0_b0_g1"] == {"alpha": 0.0, "beta": 0.0, "gamma": 1.0, "missing": "not trained"}
    assert res["attacks"]["adaptive"]["collapse"]["reasons"] == ["flat output"]
    assert res["strongest"]["ssim"]["attack"] == "adaptive" and res["strongest"]["ssim"]["value"] == 0.5
    assert res["attacks"]["adaptive"]["scores"]["enrollment_rank1"]["chance"] == 0.5
    text = json.dumps(res)  # plain JSON
    back = Scores.from_json(json.loads(text))
    for key, table in (("reconstruction", back.reconstruction), ("reid", back.reid), ("retrieval", back.retrieval)):
        assert table.to_json() == res[key], key
    assert back.protocol == _scores().protocol
    nan = Scores.from_json({**res, "retrieval": {"enrollment->raw": {**res["retrieval"]["enrollment->raw"],
                                                                    "rank1": {"value": None}}}})
    rank1 = nan.retrieval.rows["enrollment->raw"].rank1  # type: ignore[union-attr]
    assert np.isnan(rank1.value) and np.isnan(rank1.ci_high)
    assert EvaluationResults(**{**_results().__dict__, "encryption": None}).to_json().get("encryption") is None
    assert ReconstructionTable({}, "no reference frames").to_json() == {"missing": "no reference frames"}


def test_results_md_renders_every_table_from_the_types() -> None:
    from anonreid.models.evaluation.report import write_markdown

    md = write_markdown(_results())
    assert md.startswith("# Evaluation of `r` (tiny)") and "anonreid evaluate --run r" in md
    assert "| raw (ground-truth boxes) | 87.5 [47.0, 100.0] | 75.0 | 100.0 | 40.0 [30.0, 50.0] | 25.0 / 30.0 | 8 | 1 | " \
           "63.7 / 40.7 |" in md
    assert "found in 50.0% of the clips' last windows" in md
    assert "| enrollment → raw | 100.0 [16.0, 100.0] |" in md and "| raw → raw | n/a | n/a |" in md
    assert "| chaotic scrambling | n/a | n/a | n/a | n/a |" in md and "Keys: scrambling: `ChaoticScramble()`" in md
    assert "| α=0 β=0 γ=1 | missing |" in md
    assert "| adaptive attacker | 0.550 [0.450, 0.650] | 0.500 | 8 | 24 |  |" in md  # face; paper has no adaptive
    assert "COLLAPSED: flat output" in md
    sections = [line for line in md.splitlines() if line.startswith("## ")]
    assert sections.index("## Every attack (trained after E_an was frozen, on training identities only)") + 1 == \
        sections.index("## Strongest attack per metric")
    story = md.split("## Against the paper's story")[1]
    assert "enrollment queries → adaptive attacker: rank-1 50.0 [1.0, 99.0], upper bound at most 55.0: " \
           "not shown (insufficient evidence)" in story
    assert "whole-frame SSIM of reconstructions clearly lower from anonymized than from raw events (0.300 vs 0.600" in story
    assert "![face_roc.png](face_roc.png)" in md
    assert "Enrollment photos: taken the day the cameras film, in the same outfit." in md  # the threat it models
    other_day = write_markdown(replace(_results(), info=replace(_results().info, enrollment_day=2)))
    assert "Enrollment photos: taken on another day (day 2): another outfit" in other_day
    assert "learned from photos of" not in other_day
    several = write_markdown(replace(_results(), info=replace(_results().info, enrollment_day=1, photo_days=6)))
    assert "The identity attackers learned from photos of 6 days (days 1-6" in several


def test_no_verdict_renders_the_numbers_without_privacy_checks() -> None:
    from anonreid.models.evaluation.report import strongest_attacks, write_markdown

    res = _results(verdict=False)
    assert res.to_json()["verdicts"] == {"privacy_verdict_given": False, "reason": "1 of the 2 test identities was seen",
                                         "privacy_checks": [], "lines": res.verdicts.lines}
    assert res.verdicts.lines[-1] == "privacy: NO VERDICT: 1 of the 2 test identities was seen"
    assert strongest_attacks(res.scores) == [] and "## Strongest attack" not in write_markdown(res)


def test_frontier_reads_what_the_typed_results_write(tmp_path: Path) -> None:
    from anonreid.models.evaluation.frontier import frontier_point

    path = tmp_path / "results.json"
    path.write_text(json.dumps(_results().to_json()))
    point = frontier_point(json.loads(path.read_text()), "tiny", path)
    assert point.attacker is not None and point.attacker.rank1.ci_high == 0.99  # enrollment -> adaptive
    assert point.face_auc is not None and point.face_auc.value == 0.55 and point.face_what.endswith("adaptive attacker")


# ------------------------------------------------------------------------------------------ attacker config


def _nets(acfg: object) -> dict:
    return {name: {k: v for k, v in getattr(acfg, name).__dict__.items() if k != "name"} for name in ("appearance", "face")}


def test_attacker_nets_come_from_the_training_config_with_the_old_preset_values() -> None:
    """The values AttackerCfg.for_preset hard-coded before: tiny nets sized for tests, the default elsewhere."""
    from anonreid.models.config import PRESETS, load_train_config
    from anonreid.models.evaluation.attacks import AttackerCfg

    default = {"steps": 150, "model": "reid_resnet18", "embed_dim": 128, "p": 8, "k": 4, "lr": 5e-4, "warmup": 10,
               "seed": 0, "augment": True}
    tiny = {**default, "embed_dim": 32, "p": 4, "k": 2, "steps": 3, "warmup": 1}
    for preset in PRESETS:
        want = tiny if preset == "tiny" else default
        hw = ((32, 16), (16, 16)) if preset == "tiny" else ((64, 32), (32, 32))
        acfg = AttackerCfg.from_config(load_train_config(preset))
        assert _nets(acfg) == {"appearance": {"crop_hw": hw[0], **want}, "face": {"crop_hw": hw[1], **want}}, preset
        assert (acfg.appearance.name, acfg.face.name) == ("appearance", "face")
    steps = AttackerCfg.from_config(load_train_config("cpu"), steps=7)
    assert steps.appearance.steps == steps.face.steps == 7


def test_a_run_config_without_the_attacker_section_gets_its_presets(tmp_path: Path) -> None:
    """A run directory written before the section existed still evaluates with its preset's attacker; a
    run config that has the section (every new run) or a --set override is read as written."""
    import yaml

    from anonreid.models.config import load_train_config
    from anonreid.models.evaluation.attacks import AttackerCfg
    from anonreid.orchestration.config import ConfigError, config_to_yaml

    written = yaml.safe_load(config_to_yaml(load_train_config("tiny")))
    assert written["attacker"]["face"]["crop_hw"] == [16, 16]  # a new run records it
    old = {k: v for k, v in written.items() if k != "attacker"}
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(old))
    assert AttackerCfg.from_config(load_train_config(tmp_path / "old.yaml")) == AttackerCfg.from_config(
        load_train_config("tiny"))
    custom = load_train_config(tmp_path / "old.yaml", ["name=custom"])  # no preset of that name: the defaults
    assert AttackerCfg.from_config(custom).appearance.crop_hw == (64, 32)
    mine = load_train_config(tmp_path / "old.yaml", ["attacker.appearance.embed_dim=48"])
    assert AttackerCfg.from_config(mine).appearance.embed_dim == 48
    with pytest.raises(ConfigError, match=r"attacker\.appearance\.steps"):
        load_train_config("tiny", ["attacker.appearance.steps=0"])


def test_the_raw_event_identity_attack_is_the_reference_not_an_attack() -> None:
    """The direct identity attack on raw events (stage ``identity_raw``) is the no-privacy reference: never a
    privacy check or the strongest attack, and the story says whether E_an lowers the attack below it
    (the paired difference's lower bound above zero), in each direction; results.json keeps the differences."""
    from anonreid.models.evaluation.report import privacy_checks, story_checks, strongest_checks

    s = _scores()
    rows = dict(s.retrieval.rows) | {
        "identity_raw->enrollment": _ret(0.9, 0.8, 0.97, 0.5), "enrollment->identity_raw": _ret(0.9, 0.6, 1.0, 0.5),
        "identity->enrollment": _ret(0.55, 0.45, 0.65, 0.5), "enrollment->identity": _ret(0.7, 0.4, 0.9, 0.5)}
    reduction = {"identity->enrollment": _e(0.35, 0.2, 0.5), "enrollment->identity": _e(0.2, -0.1, 0.5)}
    s = Scores(s.reconstruction, s.reid, RetrievalTable(rows), s.face, s.protocol, reduction)
    assert Scores.from_json({"retrieval": s.retrieval.to_json(), "identity_reduction": {
        k: e.as_dict() for k, e in reduction.items()}}).identity_reduction == reduction
    checks = privacy_checks(s)
    assert "identity_raw" not in " ".join(c.what for c in checks)
    assert any(c.what.startswith("stream queries (direct identity attack) →") for c in checks)
    assert all("raw events" not in c.what for c in strongest_checks(s).values())
    story = story_checks(s)
    assert ("the anonymizer lowers the direct identity attack (clips → enrollment photos: raw events 90.0 [80.0, 97.0] "
            "-> anonymized 55.0 [45.0, 65.0], chance 50.0; paired difference 35.0 [20.0, 50.0] points, lower bound "
            "above 0): holds") in story
    assert ("the anonymizer lowers the direct identity attack (enrollment photo → clips: raw events 90.0 [60.0, 100.0] "
            "-> anonymized 70.0 [40.0, 90.0], chance 50.0; paired difference 20.0 [-10.0, 50.0] points, lower bound "
            "above 0): DOES NOT HOLD") in story
    assert not any("lowers the direct identity attack" in line for line in story_checks(_scores()))  # no reference run


def test_rejudge_rewrites_only_the_verdicts_with_this_versions_rules(tmp_path: Path) -> None:
    """`anonreid rejudge DIR` judges stored scores again: the verdicts of results.json and the judged part
    of results.md are what `evaluate` would write today, every other byte stays."""
    from typer.testing import CliRunner

    from anonreid.models.evaluation.report import write_markdown
    from anonreid.orchestration.cli import app

    res = _results()
    fresh_md, fresh_json = write_markdown(res), res.to_json()
    stale_json = {**fresh_json, "verdicts": {"privacy_verdict_given": True, "reason": "", "privacy_checks": [],
                                             "lines": ["an old rule: holds"]}}
    head, _, rest = fresh_md.partition("## Strongest attack per metric")
    stale_md = head + "## Against the paper's story (automatic checks)\n\n- an old rule: holds\n\n" + \
        rest[rest.index("## Figures"):]
    (tmp_path / "results.json").write_text(json.dumps(stale_json))
    (tmp_path / "results.md").write_text(stale_md)
    result = CliRunner().invoke(app, ["rejudge", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "results.md").read_text() == fresh_md
    assert json.loads((tmp_path / "results.json").read_text()) == json.loads(json.dumps(fresh_json))
    (tmp_path / "results.md").unlink()
    result = CliRunner().invoke(app, ["rejudge", str(tmp_path)])
    assert result.exit_code == 2 and "results.md: missing" in result.output


def _untestable_adaptive_beside(direct: RetrievalScore) -> Scores:
    """Enrollment queries (chance 25 %, limit 30 %): an adaptive attacker that cannot be tested (its
    reference-frame control is not clearly over the limit) whose interval reaches 95 %, beside a direct
    identity attack scoring ``direct`` whose raw-event control is clearly over."""
    s = _scores()
    rows = {"enrollment->reference": _ret(0.30, 0.20, 0.80, 0.25), "enrollment->adaptive": _ret(0.40, 0.05, 0.95, 0.25),
            "enrollment->identity_raw": _ret(0.95, 0.85, 1.0, 0.25), "enrollment->identity": direct}
    return Scores(s.reconstruction, s.reid, RetrievalTable(rows), s.face, s.protocol)


def test_the_strongest_attack_of_a_query_kind_is_a_shown_breach_over_one_that_could_not_be_tested() -> None:
    """Enrollment queries: the adaptive attacker's control (clean reference frames) is not clearly over its
    limit, so it cannot be tested though its wide interval reaches furthest; the direct identity attack's
    control (raw events) is, and it clearly breaks privacy. results.md's strongest attack is the breach,
    as the frontier's (one rule: ``attack_strength``)."""
    from anonreid.models.evaluation.report import attack_strength, privacy_checks, strongest_checks

    s = _untestable_adaptive_beside(_ret(0.80, 0.70, 0.90, 0.25))  # a breach, upper bound 90
    checks = {c.what: c for c in privacy_checks(s) if c.metric == "rank-1"}
    adaptive, direct = checks["enrollment queries → adaptive attacker"], checks["enrollment queries → direct identity attack"]
    assert adaptive.control and adaptive.estimate.ci_high > direct.estimate.ci_high
    assert direct.state == "breach" and attack_strength(direct) > attack_strength(adaptive)
    assert strongest_checks(s)["rank-1 (enrollment queries)"] == direct


def test_an_attack_over_its_limit_is_stronger_than_one_that_could_not_be_tested() -> None:
    """The direct identity attack's control passed and its upper bound is over the limit (the claim fails on
    the upper bound, though not clearly); the adaptive attacker could not be tested (its control failed)
    and its interval reaches further: the strongest is the one that shows the claim fails."""
    from anonreid.models.evaluation.report import privacy_checks, strongest_checks

    s = _untestable_adaptive_beside(_ret(0.30, 0.10, 0.60, 0.25))  # over its limit (30) on the upper bound
    direct = next(c for c in privacy_checks(s) if c.what == "enrollment queries → direct identity attack")
    assert direct.state == "insufficient evidence" and not direct.control
    assert strongest_checks(s)["rank-1 (enrollment queries)"] == direct


def test_a_reid_drop_of_exactly_five_points_is_within_the_rule_in_the_story_and_the_frontier() -> None:
    """55.0 -> 50.0 is a drop of 5 points, within "at most 5" (0.55 - 0.50 is 0.05000000000000004 in
    floating point: the story once said DOES NOT HOLD where the frontier said yes); 55.0 -> 49.75 is not."""
    from anonreid.models.evaluation import frontier
    from anonreid.models.evaluation.report import reid_drop_within, story_checks

    assert reid_drop_within(0.55, 0.50) and reid_drop_within(0.60, 0.55) and not reid_drop_within(0.55, 0.4975)
    s = _scores()
    for anonymized, word in ((0.50, "holds"), (0.4975, "DOES NOT HOLD")):
        reid = ReidTable({"gt": {"raw": _ret(0.55, 0.49, 0.61), "anonymized": _ret(anonymized, 0.43, 0.57)}}, "", 0.5)
        story = story_checks(Scores(s.reconstruction, reid, s.retrieval, s.face, s.protocol))
        line = next(x for x in story if x.startswith("ReId rank-1 drops by at most 5 points"))
        assert line.endswith(f"): {word}"), line
    assert frontier.reid_drop_within is reid_drop_within  # the frontier's target is the same rule


def test_every_committed_evaluation_carries_this_versions_verdicts(tmp_path: Path) -> None:
    """The evaluations under docs/results are judged by the rules in this checkout: judging a copy of
    each again (`anonreid.models.evaluation.report.rejudge`) changes no byte of its results.json or
    results.md. A change to the rules has to come with `anonreid rejudge` of every committed run, or the
    documents claim verdicts the code no longer gives."""
    from anonreid.models.evaluation.report import rejudge

    root = Path(__file__).resolve().parents[1] / "docs" / "results"
    runs = sorted(p.parent for p in root.rglob("results.json"))
    assert len(runs) >= 20
    stale = []
    for run in runs:
        copy = tmp_path / run.relative_to(root)
        copy.mkdir(parents=True, exist_ok=True)
        for name in ("results.json", "results.md"):
            (copy / name).write_bytes((run / name).read_bytes())
        rejudge(copy)
        stale += [f"{run.relative_to(root)}/{name}" for name in ("results.json", "results.md")
                  if (copy / name).read_bytes() != (run / name).read_bytes()]
    assert not stale, f"verdicts out of date (run `anonreid rejudge` on them): {stale}"
