"""Training budgets of attackers, and the rule every post-hoc attack must satisfy.

A privacy claim is judged against attacks trained *after* E_an is frozen, each with more budget than
any attacker E_an was trained against, so that E_an cannot pass merely by fooling weak attackers.
The budget of a training is ``steps x batch_size`` samples; a sample is one clip (``clip_len``
windows) for a reconstruction-kind attacker and one person crop for an identity-kind attacker, so
budgets are compared within a kind only.

The rule (:func:`check_attack_budget`, factor :data:`BUDGET_FACTOR` = 3): a post-hoc attack's *own*
training samples must be at least 3x the *total* training (initialisation included) of every
attacker of its kind used in E_an's training. The attackers in E_an's training are recorded in the
anonymizer checkpoint's metadata (``attackers_in_training``, written by the joint stage); every attack
checkpoint records its own ``budget``. The attack stages check the rule before training and refuse
with :class:`AttackBudgetError`; ``anonreid evaluate`` reports it per attack.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

BUDGET_FACTOR = 3
Kind = Literal["reconstruction", "identity"]


class AttackBudgetError(ValueError):
    """A post-hoc attack with less than :data:`BUDGET_FACTOR` x the budget of an attacker of E_an's training."""


@dataclass(frozen=True)
class Budget:
    """One attacker's training: ``steps x batch_size`` samples of its own, plus those of the weights it
    started from (``init_samples``, from ``init_from``)."""

    name: str
    kind: Kind
    steps: int
    batch_size: int
    init_from: str | None = None
    init_samples: int = 0

    @property
    def samples(self) -> int:
        return self.steps * self.batch_size

    @property
    def total(self) -> int:
        return self.samples + self.init_samples

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "samples": self.samples, "total": self.total}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Budget:
        try:
            return cls(str(d["name"]), d["kind"], int(d["steps"]), int(d["batch_size"]), d.get("init_from"),
                       int(d.get("init_samples", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"bad attacker budget record {dict(d)!r}: {exc}") from None


def required_samples(kind: str, trained_against: Iterable[Budget], factor: int = BUDGET_FACTOR) -> tuple[int, Budget | None]:
    """(samples a post-hoc attack of ``kind`` needs, the in-training attacker that sets it)."""
    same = [b for b in trained_against if b.kind == kind]
    if not same:
        return 0, None
    top = max(same, key=lambda b: b.total)
    return factor * top.total, top


def check_attack_budget(attack: Budget, trained_against: Iterable[Budget], factor: int = BUDGET_FACTOR,
                        knobs: str = "") -> None:
    """Raise :class:`AttackBudgetError` unless ``attack.samples >= factor x`` the total budget of every
    attacker of its kind in ``trained_against``; ``knobs`` names the config keys that raise it."""
    need, top = required_samples(attack.kind, trained_against, factor)
    if top is not None and attack.samples < need:
        raise AttackBudgetError(
            f"attack {attack.name!r} trains on {attack.samples} {attack.kind} samples ({attack.steps} steps x "
            f"{attack.batch_size}), less than {factor}x the {top.total} of attacker {top.name!r} used to train the "
            f"anonymizer (needs >= {need}); raise {knobs or 'its steps or batch size'}")


def budget_report(attack: Budget, trained_against: Iterable[Budget], factor: int = BUDGET_FACTOR) -> dict[str, Any]:
    """The rule's verdict as data (for results.json): the attack's samples, what it needs, and why."""
    need, top = required_samples(attack.kind, trained_against, factor)
    return {**attack.as_dict(), "required": need, "against": top.name if top else None, "factor": factor,
            "ok": attack.samples >= need}


def trained_against(anonymizer_metadata: Mapping[str, Any]) -> list[Budget]:
    """The attackers E_an was trained against, from its checkpoint metadata. Checkpoints made before the
    budgets were recorded give the frozen E_rec of their config (``rec.steps x rec.batch_size``)."""
    records = anonymizer_metadata.get("attackers_in_training")
    if records is not None:
        return [Budget.from_dict(r) for r in records]
    rec = (anonymizer_metadata.get("config") or {}).get("rec")
    if not rec:
        return []
    return [Budget("e_rec", "reconstruction", int(rec.get("steps", 0)), int(rec.get("batch_size", 0)))]
