"""The evaluation protocol: which people the models saw, and whether a privacy verdict may be given.

A privacy claim is about people the models never met. Every checkpoint of a run records the
fingerprint of the world it was trained on (``data_fingerprint``) and its config the identity split
(``data.val_identities``: training identities held out for validation; 0 = the run validated on the
world's *test* split). :func:`check_protocol` finds that world (the evaluated one when the fingerprints
agree, else ``--train-data``, else the ``--data`` path in the checkpoints' ``command``), takes the
identities the run trained on and validated on (:func:`anonreid.models.data.split_identities`), and
compares them with the evaluated test identities *as people*: a world's identity is its generated
person (``world.json`` ``identities``, every attribute but the split), and since identity ``i`` of a
seed does not depend on the world's size, a small world's test person can be a large world's
training person under the same name.

The verdict is refused (:class:`ProtocolError`, a clear message naming the overlap and the fix) when
a tested person was seen in training or validation, or when that cannot be checked (the training
world is not found). ``anonreid evaluate --no-verdict`` still writes every number, without verdicts.

A run trained before ``world.json`` gained fields records a fingerprint that no re-simulation reproduces
(the shipped models: fingerprint ``a04d935382b28b09``). ``--world-alias FINGERPRINT=DIR`` names the
re-simulated world (same seed and settings) whose people stand for it; the protocol records every alias
as the user's assertion (``asserted_worlds``), which the report prints beside the verdict.
"""

from __future__ import annotations

import itertools
import json
import logging
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: what an evaluation needs before its privacy verdict can show anything (issue #16)
MIN_TEST_IDENTITIES, MIN_REID_QUERIES = 40, 160


class ProtocolError(ValueError):
    """The test identities were seen (or may have been seen) by the run: no privacy verdict."""


@dataclass
class Protocol:
    """Split sizes and the verdict permission; ``reid_queries`` / ``enrollment_queries`` are filled in
    once the ReId and retrieval tables are computed."""

    test_identities: int
    train_identities: int | None = None
    val_identities: int | None = None
    validation: str = ""  # where the run selected / validated its models
    training_worlds: list[str] = field(default_factory=list)  # fingerprints of the checkpoints' worlds
    seen_test_identities: list[str] = field(default_factory=list)
    verdict: bool = True
    reason: str = ""
    reid_queries: int | None = None
    enrollment_queries: int | None = None
    asserted_worlds: dict[str, str] = field(default_factory=dict)  # fingerprint -> the world standing for it
    worlds: dict[str, str] = field(default_factory=dict)  # fingerprint -> its checkpoints and split sizes

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def person_keys(world_dir: Path, identities: list[str]) -> dict[str, str]:
    """identity -> its person as canonical JSON (every attribute of ``world.json`` but the split)."""
    meta = json.loads((Path(world_dir) / "world.json").read_text())
    people = {p["identity"]: p for p in meta["identities"]}
    return {i: json.dumps({k: v for k, v in people[i].items() if k != "split"}, sort_keys=True) for i in identities}


def checkpoint_meta(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The metadata of every checkpoint of the run, by name."""
    from anonreid.models.checkpoint import read_sidecar

    out = {}
    for path in sorted((run_dir / "checkpoints").glob("*.json")):
        out[path.stem] = read_sidecar(path)["metadata"]
    return out


def _data_args(meta: dict[str, dict[str, Any]], run_dir: Path) -> list[Path]:
    """World directories named by the run: ``env.json``'s ``data_dir`` and ``--data`` in the commands."""
    found: list[Path] = []
    env = run_dir / "env.json"
    if env.is_file():
        data_dir = json.loads(env.read_text()).get("data_dir")
        if data_dir:
            found.append(Path(data_dir))
    for m in meta.values():
        try:
            words = shlex.split(str(m.get("command", "")))
        except ValueError:
            continue
        found += [Path(b) for a, b in itertools.pairwise(words) if a == "--data"]
        found += [Path(w.split("=", 1)[1]) for w in words if w.startswith("--data=")]
    return found


def _world_of(fingerprint: str, candidates: list[Path]) -> Path | None:
    from anonreid.models.data import dataset_fingerprint

    for c in candidates:
        try:
            if dataset_fingerprint(c) == fingerprint:
                return c
        except FileNotFoundError:
            continue
    return None


#: fingerprint prefixes of real recordings (events/event_reid_dataset.py, events/paired_h5_dataset.py)
REAL_DATA_FINGERPRINTS = ("event-reid:", "paired-h5:")


def check_protocol(
    run_dir: Path, run_cfg: Any, dataset: str, test_dir: Path | None, test_ids: list[str],
    train_data: Path | None = None, aliases: dict[str, Path] | None = None,
) -> Protocol:
    """Split sizes and whether the run saw any evaluated test identity (module docstring); ``aliases``:
    fingerprint -> the world whose people stand for it (``--world-alias``)."""
    from anonreid.events.world import WorldDataset
    from anonreid.models.data import dataset_fingerprint, split_identities

    meta = checkpoint_meta(run_dir)
    fingerprints = sorted({str(m["data_fingerprint"]) for m in meta.values() if m.get("data_fingerprint")})
    val_n = int(run_cfg.data.val_identities)
    proto = Protocol(len(test_ids), training_worlds=fingerprints, validation=_validation(val_n))
    unknown = sorted(set(aliases or {}) - set(fingerprints))
    if unknown:
        raise ValueError(f"--world-alias {unknown[0]}: no checkpoint of {run_dir} records that world (they record "
                         f"{', '.join(fingerprints) or 'none'})")
    for fp, where in (aliases or {}).items():
        if not (Path(where) / "world.json").is_file():
            raise FileNotFoundError(f"--world-alias {fp}={where}: not a world dataset directory (no world.json)")
    if not fingerprints:
        proto.verdict, proto.reason = False, f"{run_dir}/checkpoints: no checkpoint records the world it was trained on"
        return proto
    if dataset != "world" or test_dir is None:
        real = [m for m in meta.values() if str(m.get("data_fingerprint", "")).startswith("event-reid")]
        if real:  # trained on real people: their names are the dataset's person ids
            _check_real_identities(proto, [m.get("identities") for m in real], dataset, test_ids)
        return proto  # (else trained on the synthetic world, tested on real people)
    test_fp = dataset_fingerprint(test_dir)
    candidates = [test_dir] + ([train_data] if train_data else []) + _data_args(meta, run_dir)
    test_people = person_keys(test_dir, test_ids)
    seen: set[str] = set()
    # the split the protocol line reports: the anonymizer's world (the ReId's without one), not an attacker's
    main_fp = next((str(meta[n]["data_fingerprint"]) for n in ("anonymizer", "reid") if meta.get(n, {}).get(
        "data_fingerprint")), fingerprints[0])
    for fp in fingerprints:
        if fp.startswith(REAL_DATA_FINGERPRINTS):  # real recordings (an E_rec from paired frames, a model
            continue  # trained on Event-ReId): their people are not the world's, so they cannot be test people
        world_dir = test_dir if fp == test_fp else _world_of(fp, candidates)
        if world_dir is None and aliases and fp in aliases:
            world_dir = aliases[fp]
            proto.asserted_worlds[fp] = str(world_dir)
        if world_dir is None:
            proto.verdict = False
            proto.reason = (f"the run was trained on a world with fingerprint {fp} that is not found (looked at "
                            f"{', '.join(sorted({str(c) for c in candidates}))}): give it with --train-data DIR so that "
                            "its training and validation identities can be compared with the test identities (or, for "
                            f"a world re-simulated since with the same seed and settings, --world-alias {fp}=DIR)")
            return proto
        world = WorldDataset(world_dir)
        data_cfg = _data_cfg_of(meta, fp, run_cfg.data)
        train, val = split_identities(world, data_cfg)
        if fp == main_fp:
            proto.train_identities, proto.val_identities = len(train), len(val)
            val_n = int(data_cfg.val_identities)
            proto.validation = _validation(val_n)
        names = sorted(name for name, m in meta.items() if str(m.get("data_fingerprint")) == fp)
        proto.worlds[fp] = f"{', '.join(names)}: {len(train)} training + {len(val)} validation identities"
        used = set(person_keys(world_dir, train + val).values())
        seen |= {i for i, key in test_people.items() if key in used}
    proto.seen_test_identities = sorted(seen)
    if seen:
        proto.verdict = False
        fix = ("retrain with --set data.val_identities=N so that validation uses held-out training identities"
               if not val_n else "evaluate on test identities the run's world did not train on")
        proto.reason = (f"{len(seen)} of the {len(test_ids)} test identities were seen by the run in training or "
                        f"validation ({', '.join(sorted(seen)[:8])}{', ...' if len(seen) > 8 else ''}; validation: "
                        f"{proto.validation}): {fix}")
    return proto


def _validation(val_n: int) -> str:
    return (f"{val_n} held-out training identities (data.val_identities)" if val_n
            else "the training world's test split (data.val_identities = 0)")


def _data_cfg_of(meta: dict[str, dict[str, Any]], fingerprint: str, run_data: Any) -> Any:
    """The data section the checkpoints trained on world ``fingerprint`` recorded (its held-out validation
    identities, which decide the split), else the run's: a run may mix checkpoints of several worlds
    trained under other settings (``--stage reid_anon`` on a wider world beside a shipped anonymizer)."""
    for m in meta.values():
        recorded = ((m.get("config") or {}).get("data") or {}).get("val_identities")
        if str(m.get("data_fingerprint")) == fingerprint and recorded is not None:
            return run_data.model_copy(update={"val_identities": int(recorded)})
    return run_data


def _check_real_identities(proto: Protocol, recorded: list[Any], dataset: str, test_ids: list[str]) -> None:
    """A run trained on Event-ReId (:mod:`anonreid.models.sources`) records its training and validation
    identities in every checkpoint; on Event-ReId they are compared with the test identities by name."""
    if dataset != "event-reid" or not all(isinstance(r, dict) for r in recorded):
        proto.verdict, proto.reason = False, "the run was trained on Event-ReId: its identity split cannot be checked"
        return
    train = {i for r in recorded for i in r.get("train", [])}
    val = {i for r in recorded for i in r.get("val", [])}
    proto.train_identities, proto.val_identities = len(train), len(val)
    seen = sorted(set(test_ids) & (train | val))
    proto.seen_test_identities = seen
    if seen:
        proto.verdict = False
        fix = ("retrain with --set data.val_identities=N so that validation uses held-out training identities"
               if not (train & set(seen)) else "evaluate on identities the run did not train on")
        proto.reason = (f"{len(seen)} of the {len(test_ids)} Event-ReId test identities were seen by the run in "
                        f"training or validation ({', '.join(seen[:8])}{', ...' if len(seen) > 8 else ''}): {fix}")


def evaluation_protocol(
    run_dir: Path, run_cfg: Any, dataset: str, data_path: Path | None, verdict: bool = True,
    train_data: Path | None = None, root: Path | None = None, aliases: dict[str, Path] | None = None,
) -> Protocol:
    """:func:`check_protocol` on the evaluated world's (or Event-ReId ``root``'s) test identities, logged;
    raises :class:`ProtocolError` when the verdict is refused, unless ``verdict`` is off (``--no-verdict``)."""
    from anonreid.events.event_reid_dataset import listed_identities
    from anonreid.events.world import WorldDataset

    test_ids: list[str] = []
    if dataset == "world" and data_path is not None:
        test_ids = WorldDataset(data_path).identities("test")
    elif dataset == "event-reid" and root is not None and Path(root).is_dir():
        test_ids = listed_identities(root, "test")
    protocol = check_protocol(run_dir, run_cfg, dataset, data_path, test_ids, train_data, aliases)
    if not verdict:
        protocol.verdict, protocol.reason = False, protocol.reason or "not asked for (--no-verdict)"
    elif not protocol.verdict:
        raise ProtocolError(f"no privacy verdict for {run_dir} on {data_path or root}: {protocol.reason}. "
                            "(--no-verdict writes the numbers without one)")
    log.info("protocol: %d test identities; the run trained on %s, validated on %s; privacy verdict: %s",
             protocol.test_identities, protocol.train_identities, protocol.validation,
             "given" if protocol.verdict else f"refused ({protocol.reason})")
    return protocol
