import math

import numpy as np
import pytest

from anonreid.models.evaluation.privacy_policy import PolicyError, PrivacyPolicy

NARROW = 0.01  # half-width of a decisive interval in the rule tests


def _states(policy, attack, metric, value, chance=math.nan, n=1000, people=50):  # type: ignore[no-untyped-def]
    ci = (value - NARROW, value + NARROW)
    return [(j.state, j.threshold) for j in policy.judge("cam1", attack, metric, value, ci, chance, n, people)]


def test_default_policy_is_relative_to_an_attacker_that_learned_nothing():
    policy = PrivacyPolicy.load()
    # SSIM / PSNR against the flat-grey floor recorded as their chance level
    assert _states(policy, "reconstruction", "ssim", 0.43, chance=0.53) == [("pass", pytest.approx(0.58))]
    assert _states(policy, "reconstruction", "ssim", 0.64, chance=0.53) == [("breach", pytest.approx(0.58))]
    [breach] = policy.judge("cam2", "reconstruction", "ssim", 0.64, (0.62, 0.66), 0.53, 100, 20)
    assert "cam2" in breach.message and "reconstruction" in breach.message and "ssim" in breach.message
    assert "[95% 0.6200, 0.6600]" in breach.message
    assert _states(policy, "retrieval", "rank1", 0.12, chance=0.09) == [("pass", pytest.approx(0.14))]
    assert _states(policy, "retrieval", "rank1", 0.20, chance=0.09) == [("breach", pytest.approx(0.14))]
    assert policy.judge("cam1", "retrieval", "unknown-metric", 1.0, (1.0, 1.0)) == []  # type: ignore[arg-type]
    assert {(r.attack, r.metric) for r in policy.rules if r.max is not None} == set()
    assert policy.min_identities == 5


def test_the_upper_bound_decides_not_the_point_estimate():
    policy = PrivacyPolicy.load()
    # a point estimate under the threshold whose interval reaches over it is no pass
    [(state, _)] = [(j.state, j.why) for j in policy.judge("cam1", "retrieval", "rank1", 0.12, (0.10, 0.145), 0.09,
                                                          2000, 50)]
    assert state == "breach"  # narrower than the 5-point margin: at the threshold, privacy not shown
    [wide] = policy.judge("cam1", "retrieval", "rank1", 0.12, (0.02, 0.30), 0.09, 2000, 50)
    assert wide.state == "insufficient evidence" and "wider than 0.05" in wide.why
    [few] = policy.judge("cam1", "reconstruction", "ssim", 0.40, (0.38, 0.42), 0.53, 40, 3)
    assert few.state == "insufficient evidence" and "3 identities, a pass needs 5" in few.why
    [one] = policy.judge("cam1", "reconstruction", "ssim", 0.70, (0.66, 0.74), 0.53, 40, 1)
    assert one.state == "breach"  # one person exposed beyond doubt is a breach, however few people


def test_paper_policy_has_the_papers_absolute_limits():
    from anonreid.models.evaluation.privacy_policy import DEFAULT_POLICY

    paper = PrivacyPolicy.load(DEFAULT_POLICY.with_name("paper_policy.yaml"))
    assert _states(paper, "reconstruction", "ssim", 0.35) == [("pass", pytest.approx(0.40))]
    assert _states(paper, "reconstruction", "ssim", 0.43) == [("breach", pytest.approx(0.40))]
    [wide] = paper.judge("cam1", "reconstruction", "ssim", 0.38, (0.30, 0.46), math.nan, 40, 10)
    assert wide.state == "insufficient evidence"  # wider than the default 0.05 resolution of a `max` rule


def test_relative_rule_without_chance_fails_loudly():
    with pytest.raises(ValueError, match="relative to chance"):
        PrivacyPolicy.load().judge("cam1", "retrieval", "rank1", 0.5, (0.4, 0.6), chance=math.nan)


def _retrieval(identities: int, per_identity: int, leak: float, seed: int):  # type: ignore[no-untyped-def]
    """The retrieval attack's real statistics on synthetic embeddings: ``identities`` enrolled people,
    ``per_identity`` query crops each, embeddings = leak * identity direction + noise."""
    from anonreid.models.evaluation.attacks import retrieval_scores

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(identities, 16))
    q_ids = np.repeat(np.arange(identities), per_identity)
    q = leak * centres[q_ids] + rng.normal(size=(len(q_ids), 16))
    return retrieval_scores(q, q_ids, ["cam1"] * len(q_ids), centres, np.arange(identities),
                            ["enrollment"] * identities, seed=seed)


@pytest.mark.parametrize(
    ("identities", "per_identity", "leak", "state"),
    [
        (3, 2, 0.0, "insufficient evidence"),  # a handful of samples at chance: nothing can be said yet
        (30, 20, 0.0, "pass"),  # 600 queries of 30 people at chance: bounded under chance + 5 points
        (30, 20, 3.0, "breach"),  # the same sample from an attacker that recognises people
        (6, 2, 3.0, "breach"),  # a leak so strong that even 12 queries prove it
    ],
)
def test_retrieval_verdict_from_few_good_and_bad_samples(identities, per_identity, leak, state):
    r = _retrieval(identities, per_identity, leak, seed=identities * 7 + per_identity)
    [j] = PrivacyPolicy.load().judge("cam1", "retrieval", "rank1", r.rank1.value, (r.rank1.ci_low, r.rank1.ci_high),
                                     r.chance["rank1"], r.num_queries, identities)
    assert j.state == state, (r.rank1, r.chance, j.why)


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


def test_a_score_whose_positive_control_cannot_fail_the_check_never_passes():
    """The same attack without the anonymizer (its score on clean reference frames) must be clearly over the
    threshold: otherwise the check could not fail, and a score under the threshold shows no privacy."""
    from anonreid.models.evaluation.privacy_policy import compute_verdicts, record_control
    from anonreid.orchestration.infra.audit_log import make_record

    policy = PrivacyPolicy.load()
    args = ("cam1", "retrieval", "rank1", 0.01, (0.004, 0.02), 0.01, 2000, 50)  # threshold 0.06: would pass
    [(blind,)] = [(j,) for j in policy.judge(*args, control_low=0.03)]
    assert blind.state == "insufficient evidence" and blind.why.startswith("not testable")
    assert [j.state for j in policy.judge(*args, control_low=0.2)] == ["pass"]  # the control sees people
    assert [j.state for j in policy.judge(*args)] == ["pass"]  # not measured: judged as before
    assert [j.state for j in policy.judge("cam1", "retrieval", "rank1", 0.3, (0.25, 0.35), 0.01, 2000, 50,
                                          control_low=0.03)] == ["breach"]  # a breach stays a breach
    # stored records carry the control, and the report judges them alike
    kept = make_record("retrieval", "cam1", "rank1", 0.01, 0.01, (0.004, 0.02), (0, 1), 2000, "v", True, 50,
                       "clopper-pearson", "", 0.03)
    plain = make_record("retrieval", "cam1", "rank1", 0.01, 0.01, (0.004, 0.02), (0, 1), 2000, "v", True, 50)
    assert record_control(kept) == 0.03 and math.isnan(record_control(plain))
    [v] = [v for v in compute_verdicts([kept], policy, ["cam1"]) if (v.attack, v.metric) == ("retrieval", "rank1")]
    assert v.status == "insufficient evidence"
    [v] = [v for v in compute_verdicts([plain], policy, ["cam1"]) if (v.attack, v.metric) == ("retrieval", "rank1")]
    assert v.status == "pass"


def test_a_stronger_live_attacker_never_reads_better_on_the_same_sample():
    """Whether a straddling rank-1 score is a breach or insufficient evidence depends on the sample (its
    effective size, which the adversary's records carry), not on the score: 19 and 28 hits in 400 queries
    are both breaches at a threshold of 5.8 %; judged by their own interval widths, 28 read insufficient
    evidence and 19 a breach. A sample too small to bound rank-1 at the threshold leaves both undecided."""
    from anonreid.models.evaluation.intervals import clopper_pearson
    from anonreid.models.evaluation.privacy_policy import compute_verdicts, record_effective_samples
    from anonreid.orchestration.infra.audit_log import make_record

    policy = PrivacyPolicy.load()  # rank-1 at most chance + 5 points
    chance, n = 0.008, 400

    def state(k: int, samples: float = math.nan) -> str:
        [j] = policy.judge("cam1", "retrieval", "rank1", k / n, clopper_pearson(k, n), chance, n, 100,
                           effective_samples=samples)
        return j.state

    assert [state(k) for k in (19, 28)] == ["breach", "insufficient evidence"]  # the interval's own width
    assert [state(k, n) for k in (5, 19, 28, 40)] == ["pass", "breach", "breach", "breach"]
    [few] = policy.judge("cam1", "retrieval", "rank1", 0.06, clopper_pearson(6, 100), chance, 100, 50, effective_samples=100)
    assert few.state == "insufficient evidence" and "100 effective queries" in few.why
    # the adversary's records carry the effective size, and the report judges them alike
    rec = make_record("retrieval", "cam1", "rank1", 28 / n, chance, clopper_pearson(28, n), (0, 1), n, "v", True, 100,
                      "clopper-pearson", "", None, float(n))
    old = make_record("retrieval", "cam1", "rank1", 28 / n, chance, clopper_pearson(28, n), (0, 1), n, "v", True, 100)
    assert record_effective_samples(rec) == n and math.isnan(record_effective_samples(old))
    assert not old.HasField("effective_samples")
    for record, want in ((rec, "breach"), (old, "insufficient evidence")):
        [v] = [v for v in compute_verdicts([record], policy, ["cam1"]) if (v.attack, v.metric) == ("retrieval", "rank1")]
        assert v.status == want
