"""The privacy policy: thresholds per (attack, metric), loaded from YAML, and the three-state check.

A rule caps a score either absolutely (``max``: e.g. reconstruction SSIM <= 0.40) or relative to the
chance level that comes with the score (``max_above_chance``: e.g. retrieval rank-1 <= chance + 5
points). A rule that needs a chance level fails loudly when a record has none, rather than passing.

A score is judged by its 95% interval, never by its point value
(:func:`anonreid.models.evaluation.intervals.privacy_state`): ``breach`` when the lower bound is over
the threshold; ``pass`` only when the upper bound is at or under it *and* the sample can show privacy
at all; ``insufficient evidence`` otherwise while the interval is wider than the rule's ``resolution``
(default: its ``max_above_chance``, else :data:`DEFAULT_RESOLUTION` of the metric). The sample can show
privacy when it covers at least the policy's ``min_identities`` distinct people (one person's clips say
nothing about everyone else) and, for rank-1, when 0 hits in its ``n`` queries would bring the
Clopper–Pearson upper bound under the threshold. A score of an attacker that collapsed (its output
hardly varies: the record's ``collapsed`` reason) can never pass: a grey-frame attacker scores at the
floor whatever the anonymizer hides.

The verdicts (:func:`compute_verdicts`, :func:`privacy_status`: the latest audit record per camera,
attack and metric judged by the policy) are the contract the adversary node, its report and the
gallery's console share; it lives here, below ``nodes`` and ``gallery``, so neither imports the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from anonreid.models.evaluation.intervals import (
    BREACH,
    INSUFFICIENT,
    PASS,
    best_rank1_upper,
    binomial_width_at,
    privacy_state,
)
from anonreid.orchestration.infra.files import load_yaml
from anonreid.proto.v1 import audit_pb2

DEFAULT_POLICY = Path(__file__).with_name("default_policy.yaml")
Attack = Literal["reconstruction", "retrieval", "inversion", "linear", "adaptive", "finetuned", "identity", "face"]
Metric = Literal["ssim", "psnr", "rank1", "map", "auc"]
#: the interval width a check must reach to decide, per metric, for rules without max_above_chance
DEFAULT_RESOLUTION = {"ssim": 0.05, "psnr": 1.0, "rank1": 0.05, "map": 0.05, "auc": 0.05}


class PolicyError(ValueError):
    """An invalid policy file; the message names the file and the rule."""


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    attack: Attack
    metric: Metric
    max: float | None = None
    max_above_chance: float | None = None
    resolution: float | None = Field(None, gt=0, description="interval width that decides (default: the margin)")

    @model_validator(mode="after")
    def _one_threshold(self) -> Rule:
        if (self.max is None) == (self.max_above_chance is None):
            raise ValueError("give exactly one of `max` and `max_above_chance`")
        return self

    def threshold(self, chance: float) -> float:
        if self.max is not None:
            return self.max
        assert self.max_above_chance is not None
        if chance is None or math.isnan(chance):
            raise ValueError(f"rule {self.attack}/{self.metric} is relative to chance, but the score has none")
        return chance + self.max_above_chance

    @property
    def decisive_width(self) -> float:
        if self.resolution is not None:
            return self.resolution
        return self.max_above_chance if self.max_above_chance is not None else DEFAULT_RESOLUTION[self.metric]


@dataclass(frozen=True)
class Judgement:
    """One rule applied to one score: its state (pass | insufficient evidence | breach) and why."""

    camera: str
    attack: str
    metric: str
    state: str
    value: float
    ci: tuple[float, float]
    threshold: float
    rule: Rule
    why: str = ""

    @property
    def message(self) -> str:
        rel = f" (chance + {self.rule.max_above_chance:.3f})" if self.rule.max_above_chance is not None else ""
        what = "privacy breach" if self.state == BREACH else f"privacy {self.state}"
        return (
            f"{what} on camera {self.camera}: {self.attack} attack {self.metric} = {self.value:.4f} "
            f"[95% {self.ci[0]:.4f}, {self.ci[1]:.4f}] vs threshold {self.threshold:.4f}{rel}"
            + (f"; {self.why}" if self.why else "")
        )


class PrivacyPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[Rule, ...]
    min_identities: int = Field(5, ge=1, description="distinct people a score must cover before it can pass")

    @classmethod
    def load(cls, path: str | Path | None = None) -> PrivacyPolicy:
        path = Path(path) if path else DEFAULT_POLICY
        data = load_yaml(path, "privacy policy", PolicyError)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise PolicyError(f"invalid privacy policy {path}: {problems}") from None

    def rules_for(self, attack: str, metric: str) -> list[Rule]:
        return [r for r in self.rules if r.attack == attack and r.metric == metric]

    def judge(
        self, camera: str, attack: str, metric: str, value: float, ci: tuple[float, float],
        chance: float = math.nan, num_samples: int = 0, num_identities: int = 0, collapsed: str = "",
        control_low: float = math.nan, effective_samples: float = math.nan,
    ) -> list[Judgement]:
        """The state of the score under every rule that covers it (empty when none does); see the module
        docstring for the rule. ``ci`` is the score's 95% interval, ``num_samples`` its sample size (queries
        for rank-1), ``num_identities`` the distinct people it covers, ``collapsed`` why the attacker that
        made it collapsed (empty: it did not), ``control_low`` the lower bound of the same attack's score
        without the anonymizer (NaN: not measured; at or under the threshold the check could not fail, so
        it cannot pass), ``effective_samples`` a rank-1 score's effective sample size: whether a sample this
        size bounds rank-1 at the threshold decides between insufficient evidence and breach for a score
        whose interval straddles it (NaN: the interval's own width decides)."""
        out = []
        for rule in self.rules_for(attack, metric):
            threshold = rule.threshold(chance)
            why = ""
            if collapsed:
                why = f"attacker collapsed ({collapsed}): its score is no evidence of privacy"
            elif math.isfinite(control_low) and control_low <= threshold:
                why = (f"not testable: without the anonymizer the same attack's lower bound is {control_low:.3f}, "
                       f"not over the threshold {threshold:.3f}")
            elif num_identities < self.min_identities:
                why = f"{num_identities} identities, a pass needs {self.min_identities}"
            elif metric == "rank1" and best_rank1_upper(num_samples) > threshold:
                why = f"{num_samples} queries cannot bound rank-1 under {threshold:.3f} even with no hit"
            at = (binomial_width_at(threshold, effective_samples)
                  if metric == "rank1" and math.isfinite(effective_samples) and effective_samples > 0 else None)
            state = privacy_state(ci[0], ci[1], threshold, rule.decisive_width, can_pass=not why, width_at_threshold=at)
            if state != BREACH and not why and ci[1] > threshold:
                why = (f"interval straddles the threshold; {effective_samples:.0f} effective queries resolve rank-1 "
                       f"at it to {at:.3f}, wider than {rule.decisive_width:g}" if at is not None else
                       f"interval wider than {rule.decisive_width:g} straddles the threshold")
            out.append(Judgement(camera, attack, metric, state, float(value), (float(ci[0]), float(ci[1])),
                                 float(threshold), rule, why if state != BREACH else ""))
        return out


GROUND_TRUTH_METRICS = {"ssim", "psnr"}


def record_control(record: audit_pb2.AuditRecord) -> float:
    """The record's positive-control lower bound (``control_low``), NaN when it was not measured."""
    return record.control_low if record.HasField("control_low") else math.nan


def record_effective_samples(record: audit_pb2.AuditRecord) -> float:
    """The record's effective sample size (``effective_samples``), NaN when it has none."""
    return record.effective_samples if record.HasField("effective_samples") else math.nan


def _finite_or_none(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


@dataclass
class Verdict:
    camera: str
    attack: str
    metric: str
    status: str  # pass | insufficient evidence | breach | not checked
    value: float = math.nan
    chance: float = math.nan
    ci: tuple[float, float] = (math.nan, math.nan)
    threshold: float = math.nan
    num_samples: int = 0
    num_identities: int = 0
    interval_method: str = ""
    model_version: str = ""
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["ci"] = [_finite_or_none(c) for c in self.ci]
        return {k: _finite_or_none(v) for k, v in d.items()}


def overall_status(verdicts: list[Verdict]) -> str:
    """breach > insufficient evidence > pass > not checked: any breach is one; a pass needs every scored
    check to pass."""
    for state in (BREACH, INSUFFICIENT, PASS):
        if any(v.status == state for v in verdicts):
            return state
    return "not checked"


def compute_verdicts(
    records: list[audit_pb2.AuditRecord],
    policy: PrivacyPolicy,
    cameras: list[str],
    ground_truth_available: bool = True,
) -> list[Verdict]:
    """The latest score per (camera, attack, metric) judged by the policy; gaps become 'not checked'."""
    latest: dict[tuple[str, str, str], audit_pb2.AuditRecord] = {}
    for r in sorted(records, key=lambda r: r.created_at_us):
        latest[(r.camera_id, r.attack, r.metric)] = r
    verdicts = []
    for camera in cameras:
        for rule in policy.rules:
            rec = latest.get((camera, rule.attack, rule.metric))
            if rec is None:
                needs_gt = rule.metric in GROUND_TRUTH_METRICS or rule.attack == "adaptive"
                reason = (
                    "needs ground truth (reference frames), which this camera does not have"
                    if needs_gt and not ground_truth_available
                    else "no score recorded in the reporting period"
                )
                verdicts.append(Verdict(camera, rule.attack, rule.metric, "not checked", reason=reason))
                continue
            [j] = [j for j in policy.judge(camera, rule.attack, rule.metric, rec.value, (rec.ci_low, rec.ci_high),
                                           rec.chance, rec.num_samples, rec.num_identities, rec.collapsed,
                                           record_control(rec), record_effective_samples(rec))
                  if j.rule == rule]
            verdicts.append(
                Verdict(
                    camera, rule.attack, rule.metric, j.state, rec.value, rec.chance, (rec.ci_low, rec.ci_high),
                    j.threshold, rec.num_samples, rec.num_identities, rec.interval_method, rec.model_version, j.why,
                )
            )
    return verdicts


def privacy_status(records: list[audit_pb2.AuditRecord], policy: PrivacyPolicy, cameras: list[str]) -> dict[str, Any]:
    """The latest verdicts and the overall status (breach > insufficient evidence > pass > not checked),
    as JSON-ready data: what the console's privacy panel and the demo's summary show."""
    verdicts = compute_verdicts(records, policy, cameras)
    return {"overall": overall_status(verdicts), "verdicts": [v.as_dict() for v in verdicts], "num_records": len(records)}
