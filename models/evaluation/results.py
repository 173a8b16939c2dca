"""The typed results of ``anonreid evaluate``: one result type per table of ``results.md``.

Each evaluator of :mod:`anonreid.models.evaluation.tables` (and the every-attack one of
:mod:`anonreid.models.evaluation.strong_attacks`) returns one of these; :mod:`~anonreid.models.evaluation.report`
renders results.md from them, and :meth:`EvaluationResults.to_json` writes ``results.json`` (the keys and
values other code reads: the frontier, the adversary node, the docs' results). ``from_json`` reads the
score tables back from a results.json (older ones included), which is what the privacy checks need.

Plain numpy and dataclasses: no torch, so the report and the frontier load without it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from anonreid.models.evaluation.collapse import CollapseVerdict
from anonreid.models.evaluation.intervals import Estimate
from anonreid.models.evaluation.protocol import Protocol

#: the camera label of enrollment photos (Market-1501 keeps same-camera matches out); a retrieval key
#: ``VIEW->enrollment`` has them as its gallery (here, not in the torch-side attacks, so the report needs no torch)
ENROLLMENT_CAMERA = "enrollment"

#: the paper's numbers on Event-ReId (Ahmad et al., ICCV 2023), printed beside ours
PAPER: dict[str, Any] = {
    "ssim": {"raw": 0.548, "anonymized": 0.384},
    "psnr": {"raw": 11.6, "anonymized": 8.9},
    "reid_rank1": {"raw": 63.7, "anonymized": 59.2},
    "reid_mAP": {"raw": 40.7, "anonymized": 36.1},
    "retrieval_rank1": {"raw": 67.8, "anonymized": 8.9},
    "inversion_rank1": 9.1,
    "face_auc": {"anonymized": 0.53},
}


# ------------------------------------------------------------------------------------------------- scores


@dataclass(frozen=True)
class ReconstructionScore:
    """Full-frame SSIM / PSNR (dominated by the static background) with the flat-grey floor; with boxes,
    the same on the person region beside its flat-grey and blurred-silhouette floors
    (:func:`~anonreid.models.evaluation.metrics.person_region_scores`)."""

    ssim: Estimate
    psnr: Estimate
    ssim_floor: float  # a flat image at the reference's mean grey
    psnr_floor: float
    person: dict[str, Estimate] = field(default_factory=dict)  # ssim, psnr on the person region
    person_floors: dict[str, dict[str, float]] = field(default_factory=dict)  # flat / silhouette -> ssim, psnr

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ssim": self.ssim.as_dict(), "psnr": self.psnr.as_dict(), "ssim_floor": self.ssim_floor,
                               "psnr_floor": self.psnr_floor}
        if self.person:
            out["person"] = {k: e.as_dict() for k, e in self.person.items()} | {"floors": self.person_floors}
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReconstructionScore:
        person = dict(d.get("person") or {})
        floors = person.pop("floors", {})
        return cls(Estimate.from_dict(d["ssim"]), Estimate.from_dict(d["psnr"]), _num(d.get("ssim_floor")),
                   _num(d.get("psnr_floor")), {k: Estimate.from_dict(e) for k, e in person.items()}, floors)


@dataclass(frozen=True)
class RetrievalScore:
    """CMC / mAP with intervals over identities and the exact chance level of a random ranking on the same ids."""

    rank1: Estimate
    rank5: float
    rank10: float
    mAP: Estimate
    chance: dict[str, float]
    num_queries: int
    num_queries_without_match: int
    num_gallery: int

    def as_dict(self) -> dict[str, Any]:
        return {"rank1": self.rank1.as_dict(), "rank5": self.rank5, "rank10": self.rank10, "mAP": self.mAP.as_dict(),
                "chance": self.chance, "num_queries": self.num_queries,
                "num_queries_without_match": self.num_queries_without_match, "num_gallery": self.num_gallery}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RetrievalScore:
        return cls(Estimate.from_dict(d["rank1"]), _num(d.get("rank5")), _num(d.get("rank10")),
                   Estimate.from_dict(d.get("mAP") or {}), {k: _num(v) for k, v in (d.get("chance") or {}).items()},
                   int(d.get("num_queries") or 0), int(d.get("num_queries_without_match") or 0),
                   int(d.get("num_gallery") or 0))


@dataclass(frozen=True)
class FaceScore:
    auc: Estimate
    fpr: np.ndarray
    tpr: np.ndarray
    num_genuine: int
    num_impostor: int
    chance_auc: float = 0.5

    def roc(self) -> tuple[np.ndarray, np.ndarray]:
        """The ROC curve thinned to about 200 points (enough to plot) and rounded, as results.json keeps it."""
        step = max(1, len(self.fpr) // 200)
        return self.fpr[::step].round(4), self.tpr[::step].round(4)

    def as_dict(self) -> dict[str, Any]:
        fpr, tpr = self.roc()
        return {"auc": self.auc.as_dict(), "chance_auc": self.chance_auc, "num_genuine": self.num_genuine,
                "num_impostor": self.num_impostor, "roc_fpr": fpr.tolist(), "roc_tpr": tpr.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FaceScore:
        return cls(Estimate.from_dict(d["auc"]), np.asarray(d.get("roc_fpr") or [], np.float64),
                   np.asarray(d.get("roc_tpr") or [], np.float64), int(d.get("num_genuine") or 0),
                   int(d.get("num_impostor") or 0), _num(d.get("chance_auc", 0.5)))


def _num(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _as(x: Any) -> Any:
    return None if x is None else x.as_dict()




# ------------------------------------------------------------------------------------------ the score tables


@dataclass(frozen=True)
class ReconstructionTable:
    """Table 2 (and the attacks' reconstructions): SSIM / PSNR per view, or why there are none."""

    views: dict[str, ReconstructionScore]
    missing: str = ""  # no reference frames in this dataset

    def to_json(self) -> dict[str, Any]:
        return {"missing": self.missing} if self.missing else {v: s.as_dict() for v, s in self.views.items()}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ReconstructionTable:
        if "missing" in d:
            return cls({}, str(d["missing"]))
        return cls({v: ReconstructionScore.from_dict(s) for v, s in d.items()})


#: Table 4's view of the raw events *without* the camera's head redaction (events/redaction.py): the
#: no-privacy ReId baseline of a run that redacts, whose ``raw`` row is on the redacted events E_an sees
UNREDACTED = "raw_unredacted"


def no_privacy_view(views: Mapping[str, Any]) -> str:
    """Of one box source's ReId views (a :class:`ReidTable` part, or its JSON), the no-privacy one that
    anonymization's cost is measured from: the raw events without the head redaction where the run
    redacts (:data:`UNREDACTED`), else the raw events."""
    return UNREDACTED if views.get(UNREDACTED) else "raw"


@dataclass(frozen=True)
class ReidTable:
    """Table 4: Market-1501 ReId per box source (``gt``, ``detected``; ``cloth_changing``: ground-truth
    boxes across outfits, on a test world filmed on several days) and input (``raw``, ``anonymized``)."""

    boxes: dict[str, dict[str, RetrievalScore]]
    raw_missing: str = ""  # why there is no raw-event row
    detection_recall: float | None = None  # clips whose last window the detector found

    def row(self, boxes: str, view: str) -> RetrievalScore | None:
        return self.boxes.get(boxes, {}).get(view)

    def no_privacy(self, boxes: str) -> RetrievalScore | None:
        """The no-privacy ReId row (:func:`no_privacy_view`)."""
        return self.row(boxes, no_privacy_view(self.boxes.get(boxes, {})))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {b: {v: s.as_dict() for v, s in part.items()} for b, part in self.boxes.items()}
        if self.raw_missing:
            out["raw_missing"] = self.raw_missing
        if self.detection_recall is not None:
            out["detection_recall"] = self.detection_recall
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ReidTable:
        boxes = {b: {v: RetrievalScore.from_dict(s) for v, s in part.items() if s}
                 for b, part in d.items() if b in ("gt", "detected", "cloth_changing")}
        recall = d.get("detection_recall")
        return cls(boxes, str(d.get("raw_missing", "")), None if recall is None else float(recall))


T = TypeVar("T")


@dataclass(frozen=True)
class Rows(Generic[T]):
    """A table of one kind of typed row (a score, ``None`` where not scored, or a baseline's row) per key."""

    rows: dict[str, T]

    def get(self, key: str) -> T | None:
        return self.rows.get(key)

    def to_json(self) -> dict[str, Any]:
        return {k: _as(r) for k, r in self.rows.items()}

    @staticmethod
    def from_json(d: Mapping[str, Any], parse: Callable[[Mapping[str, Any]], T]) -> Rows[T | None]:
        return Rows({k: parse(r) if r else None for k, r in d.items()})


#: the retrieval attacks: ``query->gallery`` (enrollment / raw queries against each view) -> score, ``None``
#: where the attacker lacks the net or the queries
RetrievalTable = Rows[RetrievalScore | None]
#: the direct identity attack's two directions (``enrollment->identity``: each enrollment photo a query
#: against the clips; ``identity->enrollment``: each clip a query against the photos)
IDENTITY_DIRECTIONS = ("enrollment->identity", "identity->enrollment")


def raw_key(key: str) -> str:
    """The key of an identity-attack direction's no-privacy reference (``identity`` -> ``identity_raw``)."""
    return key.replace("identity", "identity_raw")
#: face verification per probe source (reference frames, each view) -> score, ``None`` where not run
FaceTable = Rows[FaceScore | None]


@dataclass(frozen=True)
class Scores:
    """The tables every check reads (the story, the privacy checks, the strongest attack, the frontier)."""

    reconstruction: ReconstructionTable
    reid: ReidTable
    retrieval: RetrievalTable
    face: FaceTable
    protocol: Protocol | None = None
    # what the anonymizer takes from the direct identity attack, per direction (``identity->enrollment``,
    # ``enrollment->identity``): rank-1 on raw events minus on anonymized ones, paired over the same
    # queries, with an identity-cluster bootstrap interval (empty without the raw-event reference)
    identity_reduction: dict[str, Estimate] = field(default_factory=dict)

    @classmethod
    def from_json(cls, res: Mapping[str, Any]) -> Scores:
        """The score tables of a results.json (``res`` as loaded)."""
        proto = res.get("protocol")
        known = {f.name for f in fields(Protocol)}
        return cls(ReconstructionTable.from_json(res.get("reconstruction") or {}),
                   ReidTable.from_json(res.get("reid") or {}),
                   Rows.from_json(res.get("retrieval") or {}, RetrievalScore.from_dict),
                   Rows.from_json(res.get("face") or {}, FaceScore.from_dict),
                   Protocol(**{k: v for k, v in proto.items() if k in known}) if proto else None,
                   {k: Estimate.from_dict(e) for k, e in (res.get("identity_reduction") or {}).items()})


# ------------------------------------------------------------------------------------- the baseline tables


@dataclass(frozen=True)
class EncryptionRow:
    """Table 3: one encryption baseline, its clips rebuilt from encrypted events and attacked like raw ones."""

    transform: str
    reconstruction: ReconstructionScore | None  # None without reference frames
    reid: RetrievalScore | None  # None without a raw-event ReId model
    retrieval: RetrievalScore | None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"transform": self.transform}
        if self.reconstruction is not None:
            out["reconstruction"] = self.reconstruction.as_dict()
        if self.reid is not None:
            out["reid"] = self.reid.as_dict()
        out["retrieval"] = _as(self.retrieval)
        return out


@dataclass(frozen=True)
class AblationRow:
    """Table 5: one ``--ablation`` setting, evaluated like the main model (or why it is missing)."""

    alpha: float
    beta: float
    gamma: float
    missing: str = ""
    reconstruction: ReconstructionScore | None = None
    reid: RetrievalScore | None = None
    retrieval: RetrievalScore | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"alpha": self.alpha, "beta": self.beta, "gamma": self.gamma}
        if self.missing:
            return {**out, "missing": self.missing}
        if self.reconstruction is not None:
            out["reconstruction"] = self.reconstruction.as_dict()
        out["reid"] = _as(self.reid)
        out["retrieval"] = _as(self.retrieval)
        return out


#: Table 3's encryption baselines: scrambling, discarding
EncryptionTable = Rows[EncryptionRow]
#: Table 5: ablation tag a{alpha}_b{beta}_g{gamma} -> row
AblationTable = Rows[AblationRow]


# ------------------------------------------------------------------------------------------- every attack


@dataclass(frozen=True)
class ChanceEstimate:
    """A score of an attack with the chance level (or floor) it is read against."""

    estimate: Estimate
    chance: float

    def to_json(self) -> dict[str, Any]:
        return {**self.estimate.as_dict(), "chance": self.chance}


@dataclass(frozen=True)
class AttackScores:
    """One attack's scores: SSIM (person region, else full frame), rank-1 from enrollment photos and from
    raw reconstructions, face-verification AUC; ``None`` where not scored."""

    ssim: Estimate | None
    ssim_region: str
    enrollment_rank1: ChanceEstimate | None
    stream_rank1: ChanceEstimate | None  # the attack's clips as queries against the enrollment photos
    raw_rank1: ChanceEstimate | None
    face_auc: ChanceEstimate | None

    def metric(self, name: str) -> Estimate | None:
        """``ssim``, ``enrollment_rank1``, ``stream_rank1``, ``raw_rank1`` or ``face_auc`` as an estimate."""
        s = getattr(self, name)
        return s.estimate if isinstance(s, ChanceEstimate) else s

    def to_json(self) -> dict[str, Any]:
        def ce(x: ChanceEstimate | None) -> dict[str, Any] | None:
            return None if x is None else x.to_json()

        return {"ssim": _as(self.ssim), "ssim_region": self.ssim_region, "enrollment_rank1": ce(self.enrollment_rank1),
                "stream_rank1": ce(self.stream_rank1), "raw_rank1": ce(self.raw_rank1), "face_auc": ce(self.face_auc)}


@dataclass(frozen=True)
class AttackRow:
    """The every-attack table: one attack, its training budget (the 3x rule's verdict), scores and collapse."""

    title: str
    checkpoint: str | None
    trained: bool
    budget: dict[str, Any] | None  # anonreid.models.budget.budget_report
    scores: AttackScores
    collapse: CollapseVerdict | None = None  # trained attacks only

    def to_json(self) -> dict[str, Any]:
        out = {"title": self.title, "checkpoint": self.checkpoint, "trained": self.trained, "budget": self.budget,
               "scores": self.scores.to_json()}
        return out if self.collapse is None else {**out, "collapse": self.collapse.as_dict()}


@dataclass(frozen=True)
class AttacksTable:
    """Every attack side by side, the strongest one per metric (metric -> (attack, its score)), and the
    attackers E_an was trained against (their budgets)."""

    rows: dict[str, AttackRow]
    strongest: dict[str, tuple[str, Estimate | ChanceEstimate]]  # metric -> (attack, its AttackScores field)
    attackers_in_training: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        strongest = {}
        for metric, (name, s) in self.strongest.items():
            strongest[metric] = {"attack": name, **(s.to_json() if isinstance(s, ChanceEstimate) else s.as_dict())}
        return {"attacks": {n: a.to_json() for n, a in self.rows.items()}, "strongest": strongest,
                "attackers_in_training": self.attackers_in_training}


# ----------------------------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class PrivacyCheck:
    """One privacy claim on these results: ``metric`` (rank-1, AUC, SSIM) of ``what`` against ``limit``,
    judged on the interval's upper bound (``state``: pass / insufficient evidence / breach)."""

    what: str
    metric: str
    estimate: Estimate
    limit: float
    state: str
    #: rank-1 only: the upper bound an attacker exactly at chance would get from this check's effective
    #: sample size (its measured design effect; 1 when no query or every query hit). Over ``limit``, this
    #: evaluation is too small to show the claim even if it were true
    upper_at_chance: float | None = None
    #: rank-1 only: the probability that an attacker exactly at chance passes this check (the binomial
    #: spread around ``upper_at_chance``'s expected hit count): the check's power to show privacy that holds
    pass_at_chance: float | None = None
    #: the positive control this undecided check failed: the same attacker without the anonymizer (clean
    #: reference frames, raw events) is not clearly over the limit either, so the check could not fail and
    #: no score on the anonymized stream shows privacy (the state is then "insufficient evidence"; a
    #: breach is kept as a breach, without this note)
    control: str = ""

    def to_json(self) -> dict[str, Any]:
        e = self.estimate
        out = {"what": self.what, "metric": self.metric, "value": e.value, "ci": [e.ci_low, e.ci_high],
               "interval_method": e.method, "limit": self.limit, "compared": "upper bound <= limit",
               "state": self.state, **({"failed_control": self.control} if self.control else {})}
        if self.upper_at_chance is None:
            return out
        return {**out, "effective_queries": e.n_eff, "upper_bound_at_chance": self.upper_at_chance,
                "can_show_privacy": bool(self.upper_at_chance <= self.limit),
                "pass_probability_at_chance": self.pass_at_chance}


@dataclass(frozen=True)
class Verdicts:
    """The automatic checks: the privacy checks (none when the protocol refused a verdict) and the story
    lines as results.md prints them."""

    given: bool
    reason: str
    checks: list[PrivacyCheck]
    lines: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"privacy_verdict_given": self.given, "reason": self.reason,
                "privacy_checks": [c.to_json() for c in self.checks], "lines": self.lines}


# --------------------------------------------------------------------------------------------- the whole run


@dataclass(frozen=True)
class EvaluatedSetSummary:
    clips: int
    identities: int
    cameras: list[str]
    clips_per_pass: int
    clip_len: int
    tile_hw: list[int]
    reference_frames: bool
    reid_protocol: str

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class RunInfo:
    """What was evaluated, how, and with which attacker nets (the header of results.md)."""

    command: str
    run_dir: str
    dataset: str
    data: str
    preset: str
    device: str
    models: dict[str, Any]  # checkpoint -> created, code_version, data_fingerprint, stage
    joint: dict[str, Any]  # the loss weights (beta: the frontier's knob)
    test: EvaluatedSetSummary
    attacker_nets: dict[str, dict[str, Any]]  # appearance / face -> the attacker net's settings
    face_embedder: str
    enrollment_day: int = 0  # the day of the enrollment photos (identity.enrollment_day; 0: the day filmed)
    photo_days: int = 1  # the identity attackers' training photos: days enrollment_day.. of each training person


@dataclass(frozen=True)
class EvaluationResults:
    """Every table of one ``anonreid evaluate`` run."""

    info: RunInfo
    scores: Scores
    encryption: EncryptionTable | None  # None: --no-encryption
    ablation: AblationTable
    attacks: AttacksTable
    wall_s: float
    figures: list[str]
    verdicts: Verdicts

    def to_json(self) -> dict[str, Any]:
        """results.json (NaN written as ``null``)."""
        i, s = self.info, self.scores
        res: dict[str, Any] = {
            "command": i.command, "run_dir": i.run_dir, "dataset": i.dataset, "data": i.data, "preset": i.preset,
            "device": i.device, "models": i.models, "joint": i.joint, "test": i.test.to_json(),
            "attacker": {**i.attacker_nets, "face_embedder": i.face_embedder, "enrollment_day": i.enrollment_day,
                         "photo_days": i.photo_days},
            "paper": PAPER,
            "reconstruction": s.reconstruction.to_json(), "reid": s.reid.to_json(), "retrieval": s.retrieval.to_json(),
            "protocol": None if s.protocol is None else s.protocol.as_dict(), "face": s.face.to_json(),
        }
        if s.identity_reduction:
            res["identity_reduction"] = {k: e.as_dict() for k, e in s.identity_reduction.items()}
        if self.encryption is not None:
            res["encryption"] = self.encryption.to_json()
        res["ablation"] = self.ablation.to_json()
        res.update(self.attacks.to_json())
        res.update({"wall_s": self.wall_s, "figures": self.figures, "verdicts": self.verdicts.to_json()})
        return jsonable(res)


def jsonable(x: Any) -> Any:
    """``x`` with string keys, lists for tuples, Python scalars for numpy ones, ``None`` for NaN / inf."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x
