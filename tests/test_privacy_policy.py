import math

import pytest

from anonreid.nodes.adversary.policy import PolicyError, PrivacyPolicy


def test_default_policy_absolute_and_relative_rules():
    policy = PrivacyPolicy.load()
    assert policy.check("cam1", "reconstruction", "ssim", 0.35) == []
    [breach] = policy.check("cam2", "reconstruction", "ssim", 0.55)
    assert breach.threshold == pytest.approx(0.40)
    assert "cam2" in breach.message and "reconstruction" in breach.message and "ssim" in breach.message
    assert policy.check("cam1", "retrieval", "rank1", 0.12, chance=0.09) == []
    [rel] = policy.check("cam1", "retrieval", "rank1", 0.20, chance=0.09)
    assert rel.threshold == pytest.approx(0.14)
    assert policy.check("cam1", "retrieval", "unknown-metric", 1.0) == []  # type: ignore[arg-type]


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
