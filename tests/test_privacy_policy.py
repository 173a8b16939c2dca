import math

import pytest

from anonreid.nodes.adversary.policy import PolicyError, PrivacyPolicy


def test_default_policy_is_relative_to_an_attacker_that_learned_nothing():
    policy = PrivacyPolicy.load()
    # SSIM / PSNR against the flat-grey floor recorded as their chance level
    assert policy.check("cam1", "reconstruction", "ssim", 0.43, chance=0.53) == []
    [breach] = policy.check("cam2", "reconstruction", "ssim", 0.64, chance=0.53)
    assert breach.threshold == pytest.approx(0.58)
    assert "cam2" in breach.message and "reconstruction" in breach.message and "ssim" in breach.message
    assert policy.check("cam1", "retrieval", "rank1", 0.12, chance=0.09) == []
    [rel] = policy.check("cam1", "retrieval", "rank1", 0.20, chance=0.09)
    assert rel.threshold == pytest.approx(0.14)
    assert policy.check("cam1", "retrieval", "unknown-metric", 1.0) == []  # type: ignore[arg-type]
    assert {(r.attack, r.metric) for r in policy.rules if r.max is not None} == set()


def test_paper_policy_has_the_papers_absolute_limits():
    from anonreid.nodes.adversary.policy import DEFAULT_POLICY

    paper = PrivacyPolicy.load(DEFAULT_POLICY.with_name("paper_policy.yaml"))
    assert paper.check("cam1", "reconstruction", "ssim", 0.35) == []
    [breach] = paper.check("cam1", "reconstruction", "ssim", 0.43)
    assert breach.threshold == pytest.approx(0.40)


def test_relative_rule_without_chance_fails_loudly():
    with pytest.raises(ValueError, match="relative to chance"):
        PrivacyPolicy.load().check("cam1", "retrieval", "rank1", 0.5, chance=math.nan)


def test_bad_policy_files_are_named(tmp_path):
    both = tmp_path / "both.yaml"
    both.write_text("rules:\n  - {attack: retrieval, metric: rank1, max: 0.1, max_above_chance: 0.05}\n")
    with pytest.raises(PolicyError, match=r"both\.yaml.*exactly one"):
        PrivacyPolicy.load(both)
    typo = tmp_path / "typo.yaml"
    typo.write_text("rules:\n  - {attack: retreival, metric: rank1, max: 0.1}\n")
    with pytest.raises(PolicyError, match=r"typo\.yaml.*rules\.0\.attack"):
        PrivacyPolicy.load(typo)
    with pytest.raises(PolicyError, match="cannot read"):
        PrivacyPolicy.load(tmp_path / "missing.yaml")
