"""The evaluation protocol: no privacy verdict on people the run trained or validated on.

Runs are made without training (a resolved config and checkpoints whose metadata name the world they
came from), so each case costs a world simulation of a few seconds, not a training run."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from anonreid.orchestration.cli import app


def _world(path: Path, identities: int, train: int, seed: int = 0) -> Path:
    from anonreid.events.world.dataset import simulate_dataset
    from anonreid.orchestration.config import WorldConfig

    cfg = WorldConfig(identities=identities, train_identities=train, pass_seconds=0.3, resolution="128x96", seed=seed)
    return simulate_dataset(path, cfg, progress=False)


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """small: 5 people (001-003 train, 004-005 test); large: the same seed's 7 people with 001-002 train,
    so the large world's test people 003-005 are the small world's people of the same names."""
    base = tmp_path_factory.mktemp("protocol")
    return {"small": _world(base / "small", 5, 3), "large": _world(base / "large", 7, 2),
            "other": _world(base / "other", 7, 2, seed=9)}


def _run(path: Path, world: Path, val_identities: int, command: str | None = None) -> Path:
    """A run directory as `anonreid train` leaves it, minus the training: config + checkpoint metadata."""
    from anonreid.models.checkpoint import save_checkpoint
    from anonreid.models.config import load_train_config
    from anonreid.models.data import dataset_fingerprint
    from anonreid.models.registry import create_model
    from anonreid.orchestration.config import config_to_yaml

    cfg = load_train_config("tiny", [f"data.val_identities={val_identities}"])
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(config_to_yaml(cfg))
    meta = {"stage": "rec", "data_fingerprint": dataset_fingerprint(world),
            "command": command if command is not None else f"anonreid train --data {world} --config tiny --out {path}"}
    save_checkpoint(path / "checkpoints" / "e_rec", create_model("firenet"), meta)
    return path


def _check(run: Path, world: Path, train_data: Path | None = None):  # type: ignore[no-untyped-def]
    from anonreid.events.world import WorldDataset
    from anonreid.models.config import load_train_config
    from anonreid.models.evaluation.protocol import check_protocol

    test_ids = WorldDataset(world).identities("test")
    return check_protocol(run, load_train_config(run / "config.yaml"), "world", world, test_ids, train_data)


def test_validating_on_the_test_split_refuses_the_verdict(worlds: dict[str, Path], tmp_path: Path) -> None:
    small = worlds["small"]
    seen = _check(_run(tmp_path / "val0", small, 0), small)
    assert not seen.verdict and seen.seen_test_identities == ["004", "005"]
    assert "data.val_identities=N" in seen.reason and "test split" in seen.validation
    held_out = _check(_run(tmp_path / "val1", small, 1), small)
    assert held_out.verdict and held_out.seen_test_identities == [] and held_out.reason == ""
    assert (held_out.train_identities, held_out.val_identities, held_out.test_identities) == (2, 1, 2)


def test_each_world_is_split_as_its_checkpoints_recorded(worlds: dict[str, Path], tmp_path: Path) -> None:
    """A run may mix checkpoints trained under other settings (--stage reid_anon on a wider world beside
    a shipped anonymizer): a world is split with the validation setting its own checkpoints recorded,
    not the run's config.yaml, which may have been overridden for another world."""
    from anonreid.models.checkpoint import read_sidecar, save_checkpoint
    from anonreid.models.registry import create_model

    small = worlds["small"]
    run = _run(tmp_path / "run", small, 1)  # config.yaml now says 1 held-out identity ...
    meta = read_sidecar(run / "checkpoints" / "e_rec")["metadata"]
    save_checkpoint(run / "checkpoints" / "e_rec", create_model("firenet"),
                    {**meta, "config": {"data": {"val_identities": 0}}})  # ... the checkpoint trained with none
    recorded = _check(run, small)
    assert not recorded.verdict and recorded.seen_test_identities == ["004", "005"]  # validated on the test split
    assert "test split" in recorded.validation and (recorded.train_identities, recorded.val_identities) == (3, 2)


def test_the_same_person_in_a_larger_world_is_recognised(worlds: dict[str, Path], tmp_path: Path) -> None:
    """A run trained on the small world (validated on its held-out 003) is evaluated on the large world,
    whose test people 003-007 include the small world's 001-003 under the same names."""
    small, large, other = worlds["small"], worlds["large"], worlds["other"]
    run = _run(tmp_path / "run", small, 1)
    overlap = _check(run, large)  # the training world is found through the checkpoints' --data
    assert not overlap.verdict and overlap.seen_test_identities == ["003"]
    assert list(overlap.worlds.values()) == ["e_rec: 2 training + 1 validation identities"]
    assert _check(run, other).verdict  # another seed: other people under the same names
    hidden = _run(tmp_path / "moved", small, 1, command="anonreid train --config tiny")
    lost = _check(hidden, large)
    assert not lost.verdict and "--train-data" in lost.reason and "not found" in lost.reason
    assert _check(hidden, large, train_data=small).seen_test_identities == ["003"]


def test_a_world_alias_stands_for_a_fingerprint_no_world_reproduces(worlds: dict[str, Path], tmp_path: Path) -> None:
    """A run whose checkpoints record a world no directory reproduces byte for byte (the shipped models:
    world.json gained fields since): --world-alias names the re-simulation whose people are compared,
    recorded as asserted; an alias no checkpoint records, or a directory without a world, is an error."""
    from anonreid.events.world import WorldDataset
    from anonreid.models.checkpoint import read_sidecar, save_checkpoint
    from anonreid.models.config import load_train_config
    from anonreid.models.evaluation.protocol import check_protocol
    from anonreid.models.evaluation.report import protocol_lines
    from anonreid.models.registry import create_model

    small, large = worlds["small"], worlds["large"]
    run = _run(tmp_path / "run", small, 1, command="anonreid train --config tiny")
    meta = {**read_sidecar(run / "checkpoints" / "e_rec")["metadata"], "data_fingerprint": "a04d935382b28b09"}
    save_checkpoint(run / "checkpoints" / "e_rec", create_model("firenet"), meta)
    cfg, test_ids = load_train_config(run / "config.yaml"), WorldDataset(large).identities("test")
    lost = check_protocol(run, cfg, "world", large, test_ids)
    assert not lost.verdict and "--world-alias a04d935382b28b09=DIR" in lost.reason
    assert "trained on an unknown number of identities" in "".join(protocol_lines(lost))  # never "None"
    seen = check_protocol(run, cfg, "world", large, test_ids, aliases={"a04d935382b28b09": small})
    assert not seen.verdict and seen.seen_test_identities == ["003"]  # the small world's people, compared
    assert seen.asserted_worlds == {"a04d935382b28b09": str(small)}
    assert "asserted with --world-alias" in "".join(protocol_lines(seen))
    other = check_protocol(run, cfg, "world", worlds["other"], WorldDataset(worlds["other"]).identities("test"),
                           aliases={"a04d935382b28b09": small})
    assert other.verdict and other.seen_test_identities == []
    with pytest.raises(ValueError, match="--world-alias 0000: no checkpoint"):
        check_protocol(run, cfg, "world", large, test_ids, aliases={"0000": small})
    with pytest.raises(FileNotFoundError, match="not a world dataset directory"):
        check_protocol(run, cfg, "world", large, test_ids, aliases={"a04d935382b28b09": tmp_path})
    # an anonymizer trained on another world than its attacker: the protocol line reports the anonymizer's split
    from anonreid.models.data import dataset_fingerprint

    save_checkpoint(run / "checkpoints" / "anonymizer", create_model("firenet"),
                    {**meta, "data_fingerprint": dataset_fingerprint(worlds["other"])})
    both = check_protocol(run, cfg, "world", large, test_ids, aliases={"a04d935382b28b09": small},
                          train_data=worlds["other"])
    assert (both.train_identities, both.val_identities) == (1, 1) and len(both.worlds) == 2
    assert both.worlds["a04d935382b28b09"] == "e_rec: 2 training + 1 validation identities"
    bad = CliRunner().invoke(app, ["evaluate", "--run", str(run), "--data", str(large), "--out", str(tmp_path / "o"),
                                   "--world-alias", "a04d935382b28b09", "--no-progress"])
    assert bad.exit_code == 2 and "FINGERPRINT=DIR" in bad.output


def test_a_checkpoint_trained_on_real_recordings_does_not_block_a_world_verdict(worlds: dict[str, Path],
                                                                               tmp_path: Path) -> None:
    """An E_rec trained on a user's paired recordings (``--dataset paired-h5``) beside world-trained
    models: real people are not the world's, so the world's test split stays unseen."""
    from anonreid.models.checkpoint import save_checkpoint
    from anonreid.models.registry import create_model

    small = worlds["small"]
    run = _run(tmp_path / "run", small, 1)
    save_checkpoint(run / "checkpoints" / "e_rec_real", create_model("firenet"),
                    {"stage": "rec", "data_fingerprint": "paired-h5:/recordings:us:640x480:0123456789abcdef"})
    proto = _check(run, small)
    assert proto.verdict and proto.seen_test_identities == [] and (proto.train_identities, proto.val_identities) == (2, 1)


def test_evaluate_refuses_before_any_work_and_no_verdict_is_explicit(worlds: dict[str, Path], tmp_path: Path) -> None:
    small = worlds["small"]
    run = _run(tmp_path / "run", small, 0)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["evaluate", "--run", str(run), "--data", str(small), "--out", str(out),
                                      "--no-progress"])
    assert result.exit_code == 2
    assert "no privacy verdict" in result.output and "004, 005" in result.output and "--no-verdict" in result.output
    assert not (out / "results.json").exists()


def _est(value: float, lo: float, hi: float, method: str = "clopper-pearson", n_eff: float = 0.0) -> dict:
    return {"value": value, "ci_low": lo, "ci_high": hi, "n": 160, "method": method, "clusters": 40, "n_eff": n_eff}


def _results(protocol: dict) -> dict:
    """The parts of anonreid evaluate's results the checks read: one attack under, one straddling, one over."""
    chance = {"rank1": 0.025, "mAP": 0.1}
    row = {"rank5": 0.1, "rank10": 0.2, "mAP": _est(0.1, 0.08, 0.12), "chance": chance, "num_queries": 40}
    return {
        "protocol": protocol, "reconstruction": {"missing": "no reference frames"}, "reid": {"gt": {}},
        "face": {"anonymized": {"auc": _est(0.55, 0.50, 0.59, "clustered delong, logit")}},
        "retrieval": {
            "enrollment->raw": {**row, "rank1": _est(0.6, 0.44, 0.75)},
            "enrollment->anonymized": {**row, "rank1": _est(0.025, 0.001, 0.074)},  # upper bound 7.4 <= 7.5: holds
            # 40 effective queries: an attacker at chance (1 hit) would have an upper bound of 13.2 %
            "enrollment->inversion": {**row, "rank1": _est(0.0, 0.0, 0.088, n_eff=40)},
            "enrollment->linear": {**row, "rank1": _est(0.05, 0.006, 0.169)},  # straddles, wide: not shown
            "enrollment->adaptive": {**row, "rank1": _est(0.30, 0.166, 0.465)},  # lower bound over: does not hold
            # every clip a query against the enrollment photos: the raw baseline is no check; 320 queries hold
            "raw->enrollment": {**row, "num_queries": 320, "rank1": _est(0.5, 0.4, 0.6)},
            "anonymized->enrollment": {**row, "num_queries": 320, "rank1": _est(0.025, 0.011, 0.049, n_eff=320)},
        },
    }


def test_results_verdicts_use_the_upper_bound_and_respect_the_protocol() -> None:
    from anonreid.models.evaluation.report import strongest_attacks, verdicts
    from anonreid.models.evaluation.results import Scores

    def verdicts_json(res: dict) -> dict:
        return verdicts(Scores.from_json(res)).to_json()

    given = {"test_identities": 40, "reid_queries": 160, "verdict": True, "reason": ""}
    v = verdicts_json(_results(given))
    states = {c["what"]: c["state"] for c in v["privacy_checks"]}
    assert states == {"enrollment queries → E_rec(anonymized)": "pass", "enrollment queries → linear inverse (floor)": "insufficient evidence",
                      "enrollment queries → adaptive attacker": "breach", "face verification on E_rec(anonymized)": "pass",
                      "stream queries (E_rec(anonymized)) → enrollment photos": "pass",
                      "enrollment queries → inversion attack": "insufficient evidence"}
    power = {c["what"]: c.get("can_show_privacy") for c in v["privacy_checks"]}
    assert power["enrollment queries → inversion attack"] is False  # 13.2 % at chance, over 7.5
    assert power["stream queries (E_rec(anonymized)) → enrollment photos"] is True  # 4.9 % at chance
    assert power["enrollment queries → adaptive attacker"] is None  # no effective size recorded: not judged
    inversion = next(c for c in v["privacy_checks"] if c["what"].endswith("inversion attack"))
    assert abs(inversion["upper_bound_at_chance"] - 0.1316) < 1e-3
    # and the chance an attacker at chance passes: never for the 40 queries, surely for the 320 clips
    stream = next(c for c in v["privacy_checks"] if c["what"].startswith("stream queries"))
    assert inversion["pass_probability_at_chance"] == 0.0 and 0.95 < stream["pass_probability_at_chance"] < 1
    line = next(ln for ln in v["lines"] if ln.startswith("enrollment queries → inversion attack"))
    assert "cannot show it" in line and "13.2" in line
    assert any("power issue #16 asks for" in line and line.endswith("holds") for line in v["lines"])
    strongest = "\n".join(strongest_attacks(Scores.from_json(_results(given))))
    assert "adaptive attacker" in strongest and "DOES NOT HOLD" in strongest
    assert "rank-1 (stream queries)" in strongest  # its own row: the strongest attack of that direction
    refused = verdicts_json(_results({**given, "verdict": False, "reason": "2 of the 40 test identities were seen"}))
    assert not refused["privacy_verdict_given"] and refused["privacy_checks"] == []
    assert refused["lines"][-1] == "privacy: NO VERDICT: 2 of the 40 test identities were seen"


def test_the_chance_that_an_attacker_at_chance_passes_a_rank1_check_matches_an_independent_calculation() -> None:
    """The power of "upper bound <= chance + 5 points": exact, against a sum written out with math.comb
    and the beta quantile of each hit count, and against 20,000 simulated attackers at chance. The large
    world's 100 enrollment queries (chance 1 %) pass only with 0 or 1 hit: probability 0.736."""
    import math

    import numpy as np
    from scipy import stats

    from anonreid.models.evaluation.intervals import clopper_pearson, pass_probability_at_chance

    def by_hand(chance: float, n: int, limit: float) -> float:
        total = 0.0
        for k in range(n + 1):
            upper = 1.0 if k == n else stats.beta.ppf(0.975, k + 1, n - k)
            if upper <= limit:
                total += math.comb(n, k) * chance**k * (1 - chance) ** (n - k)
        return total

    assert abs(pass_probability_at_chance(0.01, 100, 0.06) - (0.99**100 + 100 * 0.01 * 0.99**99)) < 1e-12
    assert clopper_pearson(1, 100)[1] < 0.06 < clopper_pearson(2, 100)[1]
    for chance, n, limit in ((0.01, 100, 0.06), (1 / 40, 40, 0.075), (0.025, 320, 0.075), (0.01, 200, 0.06),
                             (0.05, 57, 0.10)):
        assert abs(pass_probability_at_chance(chance, n, limit) - by_hand(chance, n, limit)) < 1e-12, (chance, n)
    rng = np.random.default_rng(0)
    hits = rng.binomial(100, 0.01, 20_000)
    simulated = np.mean([clopper_pearson(int(k), 100)[1] <= 0.06 for k in hits])
    assert abs(simulated - 0.7358) < 0.01, simulated
    assert pass_probability_at_chance(0.01, 100.4, 0.06) == pass_probability_at_chance(0.01, 100, 0.06)  # n_eff rounded
    assert math.isnan(pass_probability_at_chance(0.01, 0, 0.06))


def test_one_query_per_identity_cannot_show_rank1_privacy_and_every_clip_can() -> None:
    """Why ``view->enrollment`` exists: with 40 enrollment queries even 0 hits leaves an upper bound over
    chance + 5 (2.5 + 5 = 7.5 %), so the enrollment direction can never pass; 8 clips per identity as
    queries against the 40 photos, at the chance rate, can when the hits are spread over identities (a
    design effect near 1, as here). The large world's clips are more alike within an identity (design
    effects 2-7 measured, docs/results/large_world_minmax_b3): there ``upper_bound_at_chance`` says
    whether the size suffices, check by check."""
    import numpy as np

    from anonreid.models.evaluation.intervals import proportion_ci

    limit = 1 / 40 + 0.05
    none_of_40 = proportion_ci(np.zeros(40), np.arange(40))
    assert none_of_40.ci_high > limit and abs(none_of_40.ci_high - 0.0881) < 1e-3
    ids = np.repeat(np.arange(40), 8)
    hits = np.zeros(320)
    hits[::40] = 1  # 8 hits of 320 (2.5 %, chance), spread over 8 identities
    at_chance = proportion_ci(hits, ids)
    assert at_chance.value == 0.025 and at_chance.ci_high <= limit, at_chance


def test_an_attack_that_cannot_identify_people_without_the_anonymizer_cannot_show_privacy() -> None:
    """The positive control: an identification check passes only when the same attacker, on the same
    queries without the anonymizer, is clearly over the check's limit (clean reference frames for the
    reconstruction attacks, raw-event towers for the direct identity attack, reference faces for face
    verification). Otherwise the check could not fail: its pass would only say that the attacker is weak."""
    from anonreid.models.evaluation.report import control_key, verdicts
    from anonreid.models.evaluation.results import Scores

    assert control_key("enrollment->adaptive") == "enrollment->reference"
    assert control_key("adaptive->enrollment") == "reference->enrollment"
    assert control_key("raw->adaptive") == "raw->raw"
    assert control_key("enrollment->identity") == "enrollment->identity_raw"
    assert control_key("identity->enrollment") == "identity_raw->enrollment"
    given = {"test_identities": 100, "reid_queries": 400, "verdict": True, "reason": ""}
    chance = {"rank1": 0.01, "mAP": 0.05}
    row = {"rank5": 0.05, "rank10": 0.1, "mAP": _est(0.05, 0.04, 0.06), "chance": chance, "num_queries": 800}
    passing = {**row, "rank1": _est(0.011, 0.004, 0.025, n_eff=800)}  # upper bound 2.5 <= 6.0: would hold
    res = {
        "protocol": given, "reconstruction": {"missing": "no reference frames"}, "reid": {"gt": {}},
        "face": {"reference": {"auc": _est(0.62, 0.58, 0.66, "clustered delong, logit")},  # not clearly over 0.60
                 "anonymized": {"auc": _est(0.51, 0.47, 0.55, "clustered delong, logit")}},
        "retrieval": {"reference->enrollment": {**row, "rank1": _est(0.08, 0.055, 0.10, n_eff=800)},  # weak
                      "anonymized->enrollment": passing,
                      "adaptive->enrollment": {**row, "rank1": _est(0.2, 0.15, 0.25, n_eff=800)},  # over anyway
                      "identity_raw->enrollment": {**row, "rank1": _est(0.12, 0.09, 0.15, n_eff=800)},  # sees
                      "identity->enrollment": passing},
    }
    checks = {c["what"]: c for c in verdicts(Scores.from_json(res)).to_json()["privacy_checks"]}
    blind = checks["stream queries (E_rec(anonymized)) → enrollment photos"]
    assert blind["state"] == "insufficient evidence" and "reference frame" in blind["failed_control"]
    assert "rank-1 8.0 [5.5, 10.0] (chance 1.0, limit 6.0)" in blind["failed_control"]
    over = checks["stream queries (adaptive attacker) → enrollment photos"]
    assert over["state"] == "breach" and "failed_control" not in over  # a weak control softens no breach
    sees = checks["stream queries (direct identity attack) → enrollment photos"]
    assert sees["state"] == "pass" and "failed_control" not in sees
    face = checks["face verification on E_rec(anonymized)"]
    assert face["state"] == "insufficient evidence" and "clean reference frames" in face["failed_control"]
    lines = verdicts(Scores.from_json(res)).lines
    assert any(ln.startswith("stream queries (E_rec(anonymized))") and "(not testable: the same attack without" in ln
               for ln in lines)
    # no raw-event reference for the direct identity attack (stage identity_raw not trained): it cannot pass
    del res["retrieval"]["identity_raw->enrollment"]
    alone = {c["what"]: c for c in verdicts(Scores.from_json(res)).to_json()["privacy_checks"]}
    unproven = alone["stream queries (direct identity attack) → enrollment photos"]
    assert unproven["state"] == "insufficient evidence" and "stage identity_raw" in unproven["failed_control"]
    # a control that identifies people: the same score now shows privacy
    res["retrieval"]["reference->enrollment"] = {**row, "rank1": _est(0.08, 0.061, 0.10, n_eff=800)}
    res["face"]["reference"] = {"auc": _est(0.65, 0.61, 0.69, "clustered delong, logit")}
    checks = {c["what"]: c for c in verdicts(Scores.from_json(res)).to_json()["privacy_checks"]}
    assert checks["stream queries (E_rec(anonymized)) → enrollment photos"]["state"] == "pass"
    assert checks["face verification on E_rec(anonymized)"]["state"] == "pass"


def test_a_trained_attack_clearly_weaker_than_the_linear_inverse_shows_no_privacy() -> None:
    """Issue #16: the closed-form linear inverse is the floor every trained attack must beat. A check on
    which a trained attack (inversion, adaptive, fine-tuned E_rec, direct identity) lies wholly under the
    floor's interval measures a broken attack, not the anonymizer: it cannot pass. An attack that only
    overlaps the floor, and the paper's untrained attack, are judged as before; a breach stays a breach."""
    from anonreid.models.evaluation.report import verdicts
    from anonreid.models.evaluation.results import Scores

    floors = {"flat": {"ssim": 0.44, "psnr": 18.0}, "silhouette": {"ssim": 0.44, "psnr": 18.5}}

    def view(ssim: tuple[float, float, float]) -> dict:
        whole = _est(0.5, 0.49, 0.51, "cluster bootstrap, bca")
        return {"ssim": whole, "psnr": _est(15.0, 14.9, 15.1, "cluster bootstrap, bca"), "ssim_floor": 0.52,
                "psnr_floor": 18.9, "person": {"ssim": _est(*ssim, "cluster bootstrap, bca"),
                                               "psnr": _est(15.0, 14.9, 15.1, "cluster bootstrap, bca"), "floors": floors}}

    chance = {"rank1": 0.01, "mAP": 0.05}
    row = {"rank5": 0.05, "rank10": 0.1, "mAP": _est(0.05, 0.04, 0.06), "chance": chance, "num_queries": 800}
    res = {
        "protocol": {"test_identities": 100, "reid_queries": 400, "verdict": True, "reason": ""},
        "reid": {"gt": {}},
        "reconstruction": {"linear": view((0.44, 0.432, 0.448)),       # the linear inverse
                           "inversion": view((0.416, 0.410, 0.422)),   # under 0.44, and wholly under the floor
                           "adaptive": view((0.43, 0.425, 0.436)),     # under 0.44, overlapping the floor
                           "anonymized": view((0.39, 0.38, 0.40))},    # the paper's attack: not a trained one
        "face": {"reference": {"auc": _est(0.76, 0.73, 0.79, "clustered delong, logit")},
                 "linear": {"auc": _est(0.58, 0.56, 0.59, "clustered delong, logit")},
                 "finetuned": {"auc": _est(0.51, 0.47, 0.55, "clustered delong, logit")}},
        "retrieval": {"reference->enrollment": {**row, "rank1": _est(0.2, 0.17, 0.23, n_eff=800)},
                      "linear->enrollment": {**row, "rank1": _est(0.05, 0.04, 0.065, n_eff=800)},
                      "inversion->enrollment": {**row, "rank1": _est(0.012, 0.006, 0.022, n_eff=800)},
                      "adaptive->enrollment": {**row, "rank1": _est(0.03, 0.02, 0.045, n_eff=800)}},
    }
    checks = {c["what"]: c for c in verdicts(Scores.from_json(res)).to_json()["privacy_checks"]}
    broken = checks["person-region SSIM of inversion attack (limit: the best floor)"]
    assert broken["state"] == "insufficient evidence" and "linear inverse" in broken["failed_control"]
    assert "0.416 [0.410, 0.422] against 0.440 [0.432, 0.448]" in broken["failed_control"]
    assert checks["person-region SSIM of adaptive attacker (limit: the best floor)"]["state"] == "pass"
    assert checks["person-region SSIM of E_rec(anonymized) (limit: the best floor)"]["state"] == "pass"
    # rank-1 and face verification: the same rule, against the floor's score on the same check
    stream = checks["stream queries (inversion attack) → enrollment photos"]
    assert stream["state"] == "insufficient evidence" and "linear inverse" in stream["failed_control"]
    assert checks["stream queries (adaptive attacker) → enrollment photos"]["state"] == "pass"
    face = checks["face verification on fine-tuned E_rec"]
    assert face["state"] == "insufficient evidence" and "linear inverse" in face["failed_control"]
    # a floor that is itself weaker: the attack is no longer below it, and its pass counts
    res["face"]["linear"] = {"auc": _est(0.50, 0.46, 0.54, "clustered delong, logit")}
    res["reconstruction"]["linear"] = view((0.40, 0.39, 0.41))
    checks = {c["what"]: c for c in verdicts(Scores.from_json(res)).to_json()["privacy_checks"]}
    assert checks["face verification on fine-tuned E_rec"]["state"] == "pass"
    assert checks["person-region SSIM of inversion attack (limit: the best floor)"]["state"] == "pass"
