"""The privacy–utility frontier of a sweep of runs (issue #16): ``anonreid frontier``.

Reads the ``results.json`` of several ``anonreid evaluate`` runs (typically ``anonreid train --config
minmax --set joint.beta=B`` for several B) and makes one point per run:

  * x: the strongest identity attack's rank-1 with its 95 % interval and chance level. The candidates
    are every rank-1 privacy check of the run (retrieval on every attack view, from enrollment photos
    and from raw reconstructions, and the direct identity attack); the strongest is the one whose
    interval's upper bound reaches furthest over its limit, chance + 5 points, except that a shown breach
    comes first, then an attack over its limit on the upper bound, then one that could not be tested (its
    positive control failed) (:func:`~anonreid.models.evaluation.report.attack_strength`, the rule of
    results.md's "Strongest attack per metric" too): privacy is judged on the upper bound, not on the
    point estimate. Runs that evaluated the same anonymizer on the same test clips under the same threat
    all get the strongest of their attacks (:func:`strongest_per_anonymizer`): the identity attacks see
    only the anonymizer's output, so a weaker training of them must not make a run look more private;
  * y: anonymized ReId rank-1 (ground-truth boxes) with its interval, beside raw ReId rank-1;
  * the run's privacy weight ``joint.beta`` (recorded in results.json by ``anonreid evaluate``; older
    results do not record it and are shown under their name only);
  * the shipping targets of issue #16: the strongest attacker's upper bound at most chance + 5 points,
    face-verification AUC's upper bound at most 0.60 (the privacy targets, withheld where the
    evaluation's protocol refused a privacy verdict), ReId rank-1 dropping by at most 5 points from
    raw and anonymized ReId rank-1 at least 50 % (the utility targets, on point estimates, as results.md
    judges the drop).

A point is on the frontier (Pareto-efficient) when no other point has both a strongest-attacker upper
bound at most as far over its chance and an anonymized ReId rank-1 at least as high, one of them
strictly. The paper's point (Ahmad et al., ICCV 2023, the ``paper`` section of results.json) is drawn
on the same axes: its anonymized ReId rank-1 against the strongest attack it reports (no interval, no
chance level; a different, real dataset and weaker, non-adaptive attackers).

Writes ``frontier.png``, ``frontier.json`` (:class:`Frontier`, round-trips through
:meth:`Frontier.from_dict`) and ``frontier.md``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from anonreid.models.evaluation.intervals import Estimate, pass_probability_at_chance, upper_bound_at_chance
from anonreid.models.evaluation.report import (
    FACE_AUC_MAX,
    MARGIN,
    NOT_ATTACKS,
    POWER,
    TOLERANCE,
    _save,
    attack_strength,
    reid_drop_within,
    strength,
    strongest_checks,
    table,
)
from anonreid.models.evaluation.results import Scores, no_privacy_view

#: the utility target: anonymized ReId rank-1 at least this
REID_MIN = 0.50
PAPER_LABEL = "paper (Event-ReId, real data)"
PAPER_NOTE = ("Ahmad et al., ICCV 2023, on Event-ReId: a different, real dataset, and the paper's attackers are "
              "not adaptive; it reports no intervals and no chance levels")


class FrontierInputError(ValueError):
    """A results.json the frontier cannot use; the message names the file and the key."""


# --------------------------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class Target:
    """One shipping target of issue #16 on one run: ``value`` compared with ``limit`` by ``rule``;
    ``met`` None when it cannot be judged (``note`` says why)."""

    name: str
    rule: str
    value: float | None
    limit: float | None
    met: bool | None
    percent: bool = True  # value and limit are fractions shown in percent (else an AUC)
    note: str = ""


@dataclass(frozen=True)
class StrongestAttack:
    """The run's strongest identity attack: what it is, its rank-1, its chance and its privacy state."""

    what: str
    rank1: Estimate
    chance: float
    state: str  # pass / insufficient evidence / breach (intervals.privacy_state on chance + MARGIN)
    control: str = ""  # the positive control it failed (report.failed_control): then it cannot show privacy
    run: str = ""  # the run whose evaluation trained it, where that is another run of the same anonymizer

    @property
    def limit(self) -> float:
        return self.chance + MARGIN

    @property
    def strength(self) -> tuple[bool, bool, bool, float]:
        """:func:`~anonreid.models.evaluation.report.attack_strength` of this attack (larger is stronger)."""
        return strength(self.state, self.control, self.rank1.ci_high, self.limit)


@dataclass(frozen=True)
class FrontierPoint:
    """One run on the frontier's axes."""

    name: str
    source: str  # the results.json it came from
    beta: float | None  # joint.beta, None where results.json does not record it
    reid: Estimate  # anonymized ReId rank-1 (ground-truth boxes)
    reid_raw: Estimate | None  # raw-event ReId rank-1 (without the head redaction where the run redacts), None
    # where the run has no raw baseline
    attacker: StrongestAttack | None  # None: the run has no identity attack
    face_auc: Estimate | None  # the strongest face-verification attack's AUC
    face_what: str
    verdict_given: bool  # False: the protocol refused a privacy verdict (``reason``)
    reason: str
    targets: tuple[Target, ...]
    on_frontier: bool = False
    enrollment_day: int = 0  # the identity attacks' enrollment photos (0: the day filmed; d: another outfit)
    photo_days: int = 1  # the identity attackers trained on photos of this many days of each training person
    anonymizer: str = ""  # which anonymizer was attacked (its checkpoint's creation, code and world), "" unknown
    test_set: str = ""  # which test clips (the world and the test set's shape)

    @property
    def meets_targets(self) -> bool:
        return all(t.met is True for t in self.targets)

    @property
    def label(self) -> str:
        return self.name if self.beta is None else f"{self.name} / β={self.beta:g}"

    @property
    def photos(self) -> str:
        """Which threat the identity attacks model (the enrollment photos' day)."""
        day = "same day" if self.enrollment_day == 0 else f"another day ({self.enrollment_day})"
        return day if self.photo_days == 1 else f"{day}; attackers saw {self.photo_days} days"

    @property
    def excess(self) -> float | None:
        """How far the strongest attacker's upper bound reaches over its chance (the x of the Pareto rule)."""
        return None if self.attacker is None else self.attacker.rank1.ci_high - self.attacker.chance


@dataclass(frozen=True)
class PaperPoint:
    """The paper's numbers on the same axes (fractions; no intervals)."""

    reid: float
    reid_raw: float | None
    attacker_rank1: float | None  # None: the paper reports no attacker rank-1 (a ReId band only)
    attacker_what: str
    label: str = PAPER_LABEL
    note: str = PAPER_NOTE


@dataclass(frozen=True)
class Frontier:
    points: tuple[FrontierPoint, ...]
    paper: PaperPoint | None
    command: str = ""
    margin: float = MARGIN
    face_auc_max: float = FACE_AUC_MAX
    reid_min: float = REID_MIN

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Frontier:
        def est(e: dict[str, Any] | None) -> Estimate | None:
            return None if e is None else Estimate(**e)

        points = []
        for p in d["points"]:
            a = p["attacker"]
            attacker = None if a is None else StrongestAttack(a["what"], Estimate(**a["rank1"]), a["chance"], a["state"],
                                                              a.get("control", ""), a.get("run", ""))
            points.append(FrontierPoint(**{**p, "reid": Estimate(**p["reid"]), "reid_raw": est(p["reid_raw"]),
                                           "attacker": attacker, "face_auc": est(p["face_auc"]),
                                           "targets": tuple(Target(**t) for t in p["targets"])}))
        paper = None if d["paper"] is None else PaperPoint(**d["paper"])
        return cls(tuple(points), paper, d["command"], d["margin"], d["face_auc_max"], d["reid_min"])


# -------------------------------------------------------------------------------------------------- input


def results_path(path: Path) -> Path:
    """``path`` itself, or ``path/results.json`` for a directory."""
    return path / "results.json" if path.is_dir() else path


def load_results(path: Path) -> dict[str, Any]:
    """A results.json of ``anonreid evaluate`` (or its directory), checked for every key the frontier reads."""
    path = results_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (give a results.json of `anonreid evaluate`, or its directory)")
    try:
        res = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FrontierInputError(f"{path}: not a JSON file ({exc})") from None
    if not isinstance(res, dict):
        raise FrontierInputError(f"{path}: not a results.json of `anonreid evaluate` (a JSON object expected)")
    for section in ("reid", "retrieval", "face", "reconstruction"):
        if not isinstance(_need(res, path, section), dict):
            raise FrontierInputError(f"{path}: key {section!r} is {res[section]!r}, not an object")
    _finite_estimate(res, path, "reid", "gt", "anonymized", "rank1")
    for key, r in res["retrieval"].items():  # every score the privacy checks read (null: no score, skipped)
        if r and key.partition("->")[2] not in (*NOT_ATTACKS, ""):
            _estimate_at(res, path, "retrieval", key, "rank1", finite=False)
            _number(_need(res, path, "retrieval", key, "chance", "rank1"), path, f"retrieval.{key}.chance.rank1")
    for view, f in res["face"].items():
        if f and view not in NOT_ATTACKS:
            _estimate_at(res, path, "face", view, "auc", finite=False)
    return res


def _need(res: dict[str, Any], path: Path, *keys: str) -> Any:
    node: Any = res
    for i, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            raise FrontierInputError(f"{path}: missing key {'.'.join(keys[: i + 1])!r} "
                                     "(not a results.json of `anonreid evaluate`, or one without that score)")
        node = node[key]
    return node


def _number(x: Any, path: Path, key: str, finite: bool = True) -> float | None:
    if x is None and not finite:
        return None
    if isinstance(x, bool) or not isinstance(x, int | float) or (finite and not math.isfinite(x)):
        raise FrontierInputError(f"{path}: key {key!r} is {x!r}, not a {'finite ' * finite}number")
    return float(x)


def _estimate_at(res: dict[str, Any], path: Path, *keys: str, finite: bool = True) -> Estimate | None:
    """The estimate at ``keys`` (None where ``finite`` is false and its value is null)."""
    e = _need(res, path, *keys)
    name = ".".join(keys)
    if not isinstance(e, dict):
        raise FrontierInputError(f"{path}: key {name!r} is {e!r}, not an estimate (value, ci_low, ci_high)")
    value, lo, hi = (_number(_need(res, path, *keys, k), path, f"{name}.{k}", finite) for k in ("value", "ci_low", "ci_high"))
    if value is None or lo is None or hi is None:
        return None
    return Estimate(value, lo, hi, int(e.get("n") or 0), str(e.get("method") or ""), int(e.get("clusters") or 0))


def _finite_estimate(res: dict[str, Any], path: Path, *keys: str) -> Estimate:
    e = _estimate_at(res, path, *keys)
    assert e is not None  # finite=True raises instead
    return e


# ----------------------------------------------------------------------------------------------- points


def frontier_point(res: dict[str, Any], name: str, source: str | Path = "") -> FrontierPoint:
    """One run's point (``res`` as :func:`load_results` returns it)."""
    path = Path(source)
    reid = _finite_estimate(res, path, "reid", "gt", "anonymized", "rank1")
    base = no_privacy_view(res["reid"]["gt"])
    reid_raw = _estimate_at(res, path, "reid", "gt", base, "rank1", finite=False) if res["reid"]["gt"].get(base) else None
    try:
        best = strongest_checks(Scores.from_json(res))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FrontierInputError(f"{path}: malformed results ({type(exc).__name__}: {exc})") from None
    rank1 = [c for c in best.values() if c.metric == "rank-1"]
    attacker = None
    if rank1:
        c = max(rank1, key=attack_strength)
        attacker = StrongestAttack(c.what, c.estimate, round(c.limit - MARGIN, 12), c.state, c.control)
    face = best.get("AUC")
    face_auc = face.estimate if face else None
    proto = res.get("protocol") or {}
    given = proto.get("verdict", True) is not False
    beta = (res.get("joint") or {}).get("beta")
    day = (res.get("attacker") or {}).get("enrollment_day", 0)
    if not isinstance(day, int) or day < 0:
        raise FrontierInputError(f"{path}: attacker.enrollment_day must be a day number >= 0, got {day!r}")
    days = (res.get("attacker") or {}).get("photo_days", 1)
    if not isinstance(days, int) or days < 1:
        raise FrontierInputError(f"{path}: attacker.photo_days must be a count of days >= 1, got {days!r}")
    an = (res.get("models") or {}).get("anonymizer") or {}
    anonymizer = " ".join(str(an[k]) for k in ("created", "code_version", "data_fingerprint") if an.get(k))
    test = res.get("test") or {}
    test_set = json.dumps([res.get("data"), test.get("identities"), test.get("clips"), test.get("clips_per_pass")])
    return FrontierPoint(
        name=name, source=str(source), beta=None if beta is None else float(beta), reid=reid, reid_raw=reid_raw,
        attacker=attacker, face_auc=face_auc, face_what=face.what if face else "", verdict_given=given,
        reason="" if given else str(proto.get("reason", "")),
        targets=shipping_targets(reid, reid_raw, attacker, face_auc, given, face.control if face else ""),
        enrollment_day=day, photo_days=days, anonymizer=anonymizer, test_set=test_set)


def _privacy_met(upper: float, limit: float, no_verdict: str, untestable: str) -> bool | None:
    """A privacy target on the upper bound: missed when it is over the limit, even for an attack that could
    not be tested (a weak attack over the limit is still over it); met only when it is under and testable."""
    if no_verdict:
        return None
    if upper > limit:
        return False
    return None if untestable else True


def shipping_targets(reid: Estimate, reid_raw: Estimate | None, attacker: StrongestAttack | None,
                     face_auc: Estimate | None, verdict_given: bool = True, face_control: str = "") -> tuple[Target, ...]:
    """Issue #16's four targets. Privacy on the upper bound (as every privacy check; ``met`` None without a
    verdict or a score, or when an upper bound under the limit comes from an attack that failed its positive
    control, ``attacker.control`` or ``face_control``, which cannot show privacy; an upper bound over the
    limit misses the target whatever the control), utility on point estimates with :data:`TOLERANCE`."""
    no_verdict = "" if verdict_given else "no privacy verdict (the protocol refused it)"
    rule_x = f"upper bound <= chance + {100 * MARGIN:g} points"
    if attacker is None:
        x = Target("strongest attacker rank-1", rule_x, None, None, None, note="no identity attack in the run")
    else:
        at_chance = upper_bound_at_chance(attacker.chance, attacker.rank1.n_eff)
        passes = pass_probability_at_chance(attacker.chance, attacker.rank1.n_eff, attacker.limit)
        power = ""  # NaN (no effective size recorded) compares False below: no note
        if at_chance > attacker.limit:
            power = f"this size cannot show it: at chance the upper bound would be {100 * at_chance:.1f}"
        elif passes < POWER:
            power = f"low power: an attacker exactly at chance passes with probability {passes:.2f}"
        untestable = f"not testable: {attacker.control}" if attacker.control else ""
        x = Target("strongest attacker rank-1", rule_x, attacker.rank1.ci_high, attacker.limit,
                   _privacy_met(attacker.rank1.ci_high, attacker.limit, no_verdict, untestable),
                   note="; ".join(n for n in (no_verdict, untestable, power) if n))
    rule_f = f"upper bound <= {FACE_AUC_MAX:.2f}"
    if face_auc is None:
        f = Target("face AUC", rule_f, None, FACE_AUC_MAX, None, percent=False, note="no face-verification attack")
    else:
        untestable = f"not testable: {face_control}" if face_control else ""
        f = Target("face AUC", rule_f, face_auc.ci_high, FACE_AUC_MAX,
                   _privacy_met(face_auc.ci_high, FACE_AUC_MAX, no_verdict, untestable), percent=False,
                   note="; ".join(n for n in (no_verdict, untestable) if n))
    rule_d = f"raw - anonymized <= {100 * MARGIN:g} points"
    if reid_raw is None:
        d = Target("ReId drop", rule_d, None, MARGIN, None, note="no raw-event ReId baseline")
    else:
        drop = reid_raw.value - reid.value
        d = Target("ReId drop", rule_d, drop, MARGIN, reid_drop_within(reid_raw.value, reid.value))
    r = Target("anonymized ReId rank-1", f">= {100 * REID_MIN:g} %", reid.value, REID_MIN,
               reid.value >= REID_MIN - TOLERANCE)
    return (x, f, d, r)


def paper_point(paper: dict[str, Any] | None) -> PaperPoint | None:
    """The paper's anonymized ReId rank-1 against the strongest attacker rank-1 it reports (percent in
    results.json's ``paper`` section, fractions here); None without a paper ReId number."""
    if not paper or (paper.get("reid_rank1") or {}).get("anonymized") is None:
        return None
    reid = paper["reid_rank1"]
    attacks = {"retrieval attack on E_rec(anonymized)": (paper.get("retrieval_rank1") or {}).get("anonymized"),
               "inversion attack": paper.get("inversion_rank1")}
    reported = {what: _fraction(v) for what, v in attacks.items() if v is not None}
    what, x = max(reported.items(), key=lambda kv: kv[1]) if reported else ("", None)
    return PaperPoint(_fraction(reid["anonymized"]), None if reid.get("raw") is None else _fraction(reid["raw"]), x, what)


def _fraction(percent: float) -> float:
    return round(float(percent) / 100, 6)  # 59.2 -> 0.592, not 0.5920000000000001


def mark_frontier(points: Sequence[FrontierPoint]) -> tuple[FrontierPoint, ...]:
    """The points with ``on_frontier`` set (Pareto: lower excess over chance, higher ReId; see the module),
    each compared only with points of the same threat (enrollment photos of the same day)."""
    def dominated(p: FrontierPoint) -> bool:  # with TOLERANCE: one interval computed twice may differ in its last bit
        return any(q is not p and q.enrollment_day == p.enrollment_day and q.excess is not None and p.excess is not None
                   and q.excess <= p.excess + TOLERANCE and q.reid.value >= p.reid.value - TOLERANCE
                   and (q.excess < p.excess - TOLERANCE or q.reid.value > p.reid.value + TOLERANCE) for q in points)

    return tuple(replace(p, on_frontier=p.excess is not None and not dominated(p)) for p in points)


def strongest_per_anonymizer(points: Sequence[FrontierPoint]) -> tuple[FrontierPoint, ...]:
    """Each point with the strongest identity attack of every run that attacked the same anonymizer on the
    same test clips under the same threat (enrollment photos' day, attackers' photo days). The identity
    attacks see only the anonymizer's output, whichever ReId a run ships beside it, so a run evaluated with a
    weaker training of the same attacks must not look more private: the strongest attack built counts.
    ``attacker.run`` names the run whose evaluation trained the attack taken from another; the privacy
    target is judged again on it (face verification keeps each run's own)."""
    def group(p: FrontierPoint) -> tuple[str, str, int, int]:
        return p.anonymizer, p.test_set, p.enrollment_day, p.photo_days

    best: dict[tuple[str, str, int, int], tuple[StrongestAttack, str]] = {}  # the strongest attack, its run
    for p in points:
        if p.anonymizer and p.attacker is not None:
            held = best.get(group(p))
            if held is None or p.attacker.strength > held[0].strength:
                best[group(p)] = p.attacker, p.name
    out = []
    for p in points:
        held = best.get(group(p)) if p.anonymizer else None
        if held is None or p.attacker is None or held[0].strength <= p.attacker.strength:
            out.append(p)
            continue
        attacker = replace(held[0], run=held[1])
        face = p.targets[1]  # the run's own face-verification target, kept as judged
        x = shipping_targets(p.reid, p.reid_raw, attacker, None, p.verdict_given)[0]
        out.append(replace(p, attacker=attacker, targets=(x, face, *p.targets[2:])))
    return tuple(out)


def build_frontier(runs: Sequence[tuple[str, Path]], command: str = "") -> Frontier:
    """The frontier of ``(name, results.json or its directory)`` runs; names must be distinct."""
    seen: dict[str, Path] = {}
    points, paper = [], None
    for name, path in runs:
        if name in seen:
            raise FrontierInputError(f"two runs named {name!r}: {seen[name]} and {path} (name them with --label NAME=PATH)")
        seen[name] = path
        res = load_results(path)
        points.append(frontier_point(res, name, results_path(path)))
        paper = paper or paper_point(res.get("paper"))
    return Frontier(mark_frontier(strongest_per_anonymizer(points)), paper, command)


# -------------------------------------------------------------------------------------------------- output


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.1f}"


def _est(e: Estimate | None, percent: bool = True) -> str:
    if e is None:
        return "n/a"
    if percent:
        return f"{_pct(e.value)} [{_pct(e.ci_low)}, {_pct(e.ci_high)}]"
    return f"{e.value:.3f} [{e.ci_low:.3f}, {e.ci_high:.3f}]"


def _target_cell(t: Target) -> str:
    if t.met is None:
        return t.note or "not judged"
    value = _pct(t.value) if t.percent else f"{t.value:.3f}"
    limit = _pct(t.limit) if t.percent else f"{t.limit:.2f}"
    return f"{'yes' if t.met else 'NO'} ({value} vs {limit}{'; ' + t.note if t.note else ''})"


def frontier_markdown(fr: Frontier) -> str:
    rows = []
    for number, p in enumerate(fr.points, 1):  # the number that marks the run's point in frontier.png
        a = p.attacker
        rows.append([str(number), p.name, "n/a" if p.beta is None else f"{p.beta:g}", p.photos, _est(p.reid), _est(p.reid_raw),
                     (f"{a.what} (trained in the evaluation of: {a.run})" if a.run else a.what) if a else "none",
                     _est(a.rank1) if a else "n/a", _pct(a.chance) if a else "n/a",
                     _est(p.face_auc, percent=False), *(_target_cell(t) for t in p.targets),
                     "yes" if p.meets_targets else "no", "yes" if p.on_frontier else ""])
    header = ["#", "run", "β", "enrollment photos", "anonymized ReId rank-1", "raw ReId rank-1", "strongest attack", "its rank-1", "chance",
              "face AUC", *(f"{t.name}: {t.rule}" for t in fr.points[0].targets), "all targets", "on frontier"]
    out = ["# Privacy–utility frontier", "", "Command:", "", "```", fr.command or "(library call)", "```", "",
           "Percentages with 95% intervals (from each run's results.json). Strongest attack: of every identity attack "
           "of the run (retrieval on every attack view from enrollment photos and from raw reconstructions, and the "
           "direct identity attack), a shown breach first, then one whose upper bound is over its limit, then one that "
           "could not be tested (its positive control failed), then the one whose rank-1 upper bound reaches furthest "
           "over its chance + "
           f"{100 * fr.margin:g} points limit; where several runs attacked the same anonymizer on the same test "
           "clips, every one of them gets the strongest of their attacks (the identity attacks see only the "
           "anonymizer's output), and the run that trained it is named. Targets of issue #16: the privacy ones on the upper bound (withheld "
           "where the evaluation refused a privacy verdict), the utility ones on point estimates. On frontier: no "
           "other run attacked with enrollment photos of the same day has both a strongest-attacker upper bound at "
           "most as far over chance and a higher anonymized ReId rank-1. Enrollment photos: the same day's show the "
           "outfit the cameras film, so identifying from them can use clothing, the cue ReId itself needs; another "
           "day's show another outfit on the same body and face, so identifying needs biometric cues.", "", table(header, rows) if rows else "No runs.", ""]
    refused = [p for p in fr.points if not p.verdict_given]
    out += [f"- {p.name}: no privacy verdict: {p.reason}" for p in refused] + ([""] if refused else [])
    if fr.paper is not None:
        pp = fr.paper
        attack = (f"{pp.attacker_what} rank-1 {_pct(pp.attacker_rank1)}" if pp.attacker_rank1 is not None
                  else "no attacker rank-1 reported (drawn as a ReId line only)")
        out += [f"{pp.label}: anonymized ReId rank-1 {_pct(pp.reid)}, raw {_pct(pp.reid_raw)}; strongest attack "
                f"it reports: {attack}. {pp.note}.", ""]
    out += ["![privacy–utility frontier](frontier.png)", ""]
    return "\n".join(out)


def frontier_figure(fr: Frontier, path: Path) -> str:
    """frontier.png: each run with its x/y intervals, chance lines, the privacy-target band, raw ReId."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.6))
    plotted = [p for p in fr.points if p.attacker is not None]
    for i, chance in enumerate(sorted({round(p.attacker.chance, 6) for p in plotted if p.attacker})):
        ax.axvspan(0, 100 * (chance + fr.margin), color="#228833", alpha=0.08,
                   label=f"privacy target: upper bound ≤ chance + {100 * fr.margin:g}" if i == 0 else None)
        ax.axvline(100 * chance, color="#cc3311", ls="--", lw=1, label="chance (strongest attack)" if i == 0 else None)
    for i, raw in enumerate(sorted({round(p.reid_raw.value, 6) for p in fr.points if p.reid_raw})):
        ax.axhline(100 * raw, color="#555555", lw=1, label="raw ReId rank-1" if i == 0 else None)
        ax.axhline(100 * (raw - fr.margin), color="#555555", ls=":", lw=1,
                   label=f"raw − {100 * fr.margin:g} (ReId target)" if i == 0 else None)
    ax.axhline(100 * fr.reid_min, color="#999999", ls="-.", lw=0.8, label=f"ReId target ≥ {100 * fr.reid_min:g}")
    for i, day in enumerate(sorted({p.enrollment_day for p in plotted})):  # one frontier per threat
        edge = sorted((p for p in plotted if p.on_frontier and p.enrollment_day == day),
                      key=lambda p: p.attacker.rank1.value if p.attacker else 0.0)
        if len(edge) > 1:
            ax.plot([100 * p.attacker.rank1.value for p in edge if p.attacker], [100 * p.reid.value for p in edge],
                    color="#4477aa", alpha=0.5, lw=1.5, ls="-" if day == 0 else "--",
                    label="frontier (Pareto-efficient runs)" if i == 0 else None)
    numbers = {id(p): n for n, p in enumerate(fr.points, 1)}  # the table's numbers: run names are too long to print
    for p in plotted:
        a = p.attacker
        assert a is not None
        x, y = 100 * a.rank1.value, 100 * p.reid.value
        ax.errorbar(x, y, xerr=[[x - 100 * a.rank1.ci_low], [100 * a.rank1.ci_high - x]],
                    yerr=[[y - 100 * p.reid.ci_low], [100 * p.reid.ci_high - y]], fmt="o", capsize=3,
                    color="#228833" if p.meets_targets else "#4477aa", mfc="white" if p.enrollment_day else None)
        ax.annotate(str(numbers[id(p)]), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    xmax = max([100 * p.attacker.rank1.ci_high for p in plotted if p.attacker] + [0.0])
    if fr.paper is not None:
        pp = fr.paper
        if pp.attacker_rank1 is None:
            ax.axhline(100 * pp.reid, color="#aa3377", ls="--", lw=1.2, label=f"{pp.label}: ReId only")
        else:
            ax.scatter([100 * pp.attacker_rank1], [100 * pp.reid], marker="*", s=200, color="#aa3377", zorder=4,
                       label=f"{pp.label}; no interval")
            ax.annotate(f"{pp.label}\n(different dataset)", (100 * pp.attacker_rank1, 100 * pp.reid),
                        textcoords="offset points", xytext=(6, -18), fontsize=7, color="#aa3377")
            xmax = max(xmax, 100 * pp.attacker_rank1)
    ax.set_xlim(0, min(100.0, xmax + 10))
    ax.set_ylim(0, 100)
    ax.set_xlabel("strongest attacker rank-1 (%; the strongest attack on the run's anonymizer, named in frontier.md),\n"
                  "lower = more private; numbers: the runs of frontier.md's table", fontsize=9)
    ax.set_ylabel("anonymized ReId rank-1 (%)")
    ax.set_title("Privacy–utility frontier (95% intervals; green = meets every target;\n"
                 "hollow = enrollment photos of another day)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def write_frontier(fr: Frontier, out_dir: Path) -> list[Path]:
    """frontier.png, frontier.json and frontier.md in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    frontier_figure(fr, out_dir / "frontier.png")
    (out_dir / "frontier.json").write_text(json.dumps(fr.as_dict(), indent=1, allow_nan=False) + "\n")
    (out_dir / "frontier.md").write_text(frontier_markdown(fr))
    return [out_dir / n for n in ("frontier.png", "frontier.json", "frontier.md")]
