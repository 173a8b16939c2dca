"""Checkpoints: safetensors weights + a JSON sidecar with everything needed to trust and reproduce them.

``save_checkpoint("run/checkpoints/anonymizer", model, metadata)`` writes ``anonymizer.safetensors``
and ``anonymizer.json``. The JSON holds ``model_cfg`` (the :class:`ModelCfg` that rebuilds the network
through :func:`create_model`), and ``metadata``: the training config, seed, data fingerprint, metrics,
code version, the command that made it and the time; ``code_version`` and ``command`` are filled in
when the caller does not give them. ``fp16=True`` stores floating tensors as float16 (half the size,
for the weights shipped with the package); loading casts back to float32.

``load_checkpoint(path, expected_cfg)`` rebuilds the model from the sidecar, and refuses with a
:class:`CheckpointError` naming every differing config field when the checkpoint is not the model the
caller expects (e.g. ``params.embed_dim: 128 in the checkpoint, 256 expected``), instead of failing
later with a tensor-shape error or, worse, running the wrong network.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from anonreid.models.registry import ModelCfg, create_model, model_cfg
from anonreid.orchestration.infra.version import package_version

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that is missing, malformed, or not the model the caller expects."""


@dataclass
class LoadedCheckpoint:
    model: nn.Module
    cfg: ModelCfg
    metadata: dict[str, Any]


def _stem(path: str | Path) -> Path:
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".safetensors", ".json") else path


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """``anonreid <version>`` plus the git commit (``+dirty`` when the tree has changes) when available."""
    out = f"anonreid {package_version()}"
    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return out
    return f"{out} git {commit}{'+dirty' if dirty else ''}" if commit else out


def save_checkpoint(
    path: str | Path, model: nn.Module, metadata: Mapping[str, Any] | None = None, fp16: bool = False
) -> Path:
    """Write ``<path>.safetensors`` and ``<path>.json``; returns the safetensors path."""
    cfg: ModelCfg | None = getattr(model, "cfg", None)
    if cfg is None:
        raise CheckpointError("only models built by create_model (with a .cfg) can be checkpointed")
    stem = _stem(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, t in model.state_dict().items():
        t = t.detach().cpu()
        if fp16 and t.is_floating_point():
            t = t.half()
        tensors[name] = t.contiguous()
    meta = dict(metadata or {})
    meta.setdefault("code_version", code_version())
    meta.setdefault("command", " ".join(sys.argv))
    meta.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    sidecar = {
        "format": FORMAT_VERSION,
        "dtype": "float16" if fp16 else "float32",
        "model_cfg": cfg.to_json(),
        "metadata": meta,
    }
    # each file written beside its name and renamed over it: never half-written, and where the name is a
    # link (a view of a shipped set, models.bundle.run_view) the link is replaced, never the file it
    # points at
    weights = stem.with_suffix(".safetensors")
    partial = weights.with_name(weights.name + ".partial")
    save_file(tensors, str(partial), metadata={"model": cfg.name, "format": str(FORMAT_VERSION)})
    partial.replace(weights)
    sidecar_path = stem.with_suffix(".json")
    partial = sidecar_path.with_name(sidecar_path.name + ".partial")
    partial.write_text(json.dumps(sidecar, indent=2, sort_keys=True, default=str) + "\n")
    partial.replace(sidecar_path)
    return weights


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The JSON sidecar of a checkpoint (``model_cfg``, ``metadata``, ``dtype``, ``format``)."""
    sidecar_path = _stem(path).with_suffix(".json")
    try:
        data = json.loads(sidecar_path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{sidecar_path}: checkpoint metadata not found") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{sidecar_path}: not valid JSON ({exc})") from None
    for key in ("format", "model_cfg", "metadata"):
        if key not in data:
            raise CheckpointError(f"{sidecar_path}: missing field {key!r}")
    if data["format"] != FORMAT_VERSION:
        raise CheckpointError(f"{sidecar_path}: format {data['format']!r}, this code reads {FORMAT_VERSION}")
    return data


def _check_expected(source: Path, cfg: ModelCfg, expected: ModelCfg | Mapping[str, Any]) -> None:
    if isinstance(expected, ModelCfg):
        diffs = cfg.diff(expected)
    else:
        have = cfg.to_json()
        have.update({f"params.{k}": v for k, v in have.pop("params").items()})
        diffs = [
            f"{key}: {have.get(key)!r} != {value!r}"
            for key, value in expected.items()
            if have.get(key) != (list(value) if isinstance(value, tuple) else value)
        ]
    if diffs:
        lines = []
        for d in diffs:
            key, _, rest = d.partition(": ")
            mine, _, theirs = rest.partition(" != ")
            lines.append(f"field {key!r} is {mine} in the checkpoint but {theirs} expected")
        raise CheckpointError(f"{source}: checkpoint does not match the expected model config: " + "; ".join(lines))


def load_checkpoint(
    path: str | Path, expected_cfg: ModelCfg | Mapping[str, Any] | None = None, device: str | torch.device = "cpu"
) -> LoadedCheckpoint:
    """Rebuild the model of a checkpoint, check it against ``expected_cfg``, load the weights (float32)."""
    stem = _stem(path)
    sidecar = read_sidecar(stem)
    try:
        cfg = ModelCfg.from_json(sidecar["model_cfg"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{stem}.json: bad model_cfg ({exc})") from None
    if expected_cfg is not None:
        _check_expected(stem.with_suffix(".json"), cfg, expected_cfg)
    model = create_model(cfg.name, **cfg.kwargs())
    rebuilt = model_cfg(model)
    # a builder argument added after the checkpoint was written rebuilds at its default, which must keep
    # the old network (e.g. firenet's input_affine); a recorded argument or convention that differs is an error
    recorded = replace(cfg, params=tuple(sorted({**dict(rebuilt.params), **dict(cfg.params)}.items())))
    if rebuilt != recorded:  # the registry's defaults changed since the checkpoint was written
        raise CheckpointError(f"{stem}.json: rebuilt model differs from the checkpoint: {rebuilt.diff(cfg)}")
    weights = stem.with_suffix(".safetensors")
    if not weights.exists():
        raise CheckpointError(f"{weights}: checkpoint weights not found")
    tensors = load_file(str(weights))
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{weights}: tensors missing {missing[:5]} / unexpected {unexpected[:5]} for {cfg.name}")
    for name, t in tensors.items():
        if t.shape != own[name].shape:
            raise CheckpointError(f"{weights}: tensor {name!r} has shape {tuple(t.shape)}, model wants {tuple(own[name].shape)}")
        tensors[name] = t.to(own[name].dtype)
    model.load_state_dict(tensors)
    model.to(device).eval()
    return LoadedCheckpoint(model, cfg, sidecar["metadata"])
