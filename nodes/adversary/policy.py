"""The privacy policy: thresholds per (attack, metric), loaded from YAML, and the breach check.

A rule caps a score either absolutely (``max``: e.g. reconstruction SSIM <= 0.40) or relative to the
chance level that comes with the score (``max_above_chance``: e.g. retrieval rank-1 <= chance + 5
points). A rule that needs a chance level fails loudly when a record has none, rather than passing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

DEFAULT_POLICY = Path(__file__).with_name("default_policy.yaml")
Attack = Literal["reconstruction", "retrieval", "inversion", "adaptive", "face"]
Metric = Literal["ssim", "psnr", "rank1", "map", "auc"]


class PolicyError(ValueError):
    """An invalid policy file; the message names the file and the rule."""


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    attack: Attack
    metric: Metric
    max: float | None = None
    max_above_chance: float | None = None

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


@dataclass(frozen=True)
class Breach:
    camera: str
    attack: str
    metric: str
    value: float
    threshold: float
    rule: Rule

    @property
    def message(self) -> str:
        rel = f" (chance + {self.rule.max_above_chance:.3f})" if self.rule.max_above_chance is not None else ""
        return (
            f"privacy breach on camera {self.camera}: {self.attack} attack {self.metric} = {self.value:.4f} "
            f"> threshold {self.threshold:.4f}{rel}"
        )


class PrivacyPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[Rule, ...]

    @classmethod
    def load(cls, path: str | Path | None = None) -> PrivacyPolicy:
        path = Path(path) if path else DEFAULT_POLICY
        try:
            data = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise PolicyError(f"cannot read privacy policy {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise PolicyError(f"privacy policy {path} is not valid YAML: {exc}") from exc
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise PolicyError(f"invalid privacy policy {path}: {problems}") from None

    def rules_for(self, attack: str, metric: str) -> list[Rule]:
        return [r for r in self.rules if r.attack == attack and r.metric == metric]

    def check(self, camera: str, attack: str, metric: str, value: float, chance: float = math.nan) -> list[Breach]:
        """Every rule the score breaks (empty when it complies or no rule covers it)."""
        breaches = []
        for rule in self.rules_for(attack, metric):
            threshold = rule.threshold(chance)
            if value > threshold:
                breaches.append(Breach(camera, attack, metric, float(value), float(threshold), rule))
        return breaches
