"""The model registry: ``create_model(name, **kw)`` is the one way to build a network (as in timm).

Each family file registers builders with :func:`register_model`; a builder takes plain keyword
arguments and returns an ``nn.Module``. :func:`create_model` attaches a frozen :class:`ModelCfg`
(``model.cfg``) recording the name, family, the input/output conventions that the camera node and
the gallery read instead of repeating them, and the exact builder arguments, so a checkpoint can
rebuild the same network and a mismatched one is refused with the field named (fast-reid's registry
rejects duplicate names; so does this one).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

Family = Literal["anonymizer", "reid", "reconstruction", "inversion"]
#: how a voxel-valued tensor is scaled: ``voxel`` = mean 0 / std 1 over non-zero cells (E2VID
#: convention, as produced by anonreid.events.voxel), ``unit`` = squashed into (0, 1) by a sigmoid.
ValueRange = Literal["voxel", "unit", "image"]


@dataclass(frozen=True)
class ModelCfg:
    """What a built model expects and produces, plus the builder arguments that rebuild it."""

    name: str
    family: Family
    in_bins: int = 5
    out_channels: int = 5
    input_range: ValueRange = "voxel"
    output_range: ValueRange = "voxel"
    input_hw: tuple[int, int] | None = None  # None: fully convolutional, any H, W
    embed_dim: int | None = None
    normalisation: str = "voxel: mean/std over non-zero cells, B temporal bins, polarity +-1"
    params: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["input_hw"] = list(self.input_hw) if self.input_hw else None
        out["params"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.params}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelCfg:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"model config has unknown field(s) {unknown}")
        data = dict(data)
        if data.get("input_hw") is not None:
            data["input_hw"] = tuple(data["input_hw"])
        data["params"] = tuple(
            (k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(data.get("params", {}).items())
        )
        return cls(**data)

    def diff(self, other: ModelCfg) -> list[str]:
        """Fields that differ, as ``field: self-value != other-value`` (builder params as ``params.key``)."""
        out = []
        for f in dataclasses.fields(self):
            if f.name == "params":
                mine, theirs = self.kwargs(), other.kwargs()
                for key in sorted(set(mine) | set(theirs)):
                    if mine.get(key) != theirs.get(key):
                        out.append(f"params.{key}: {mine.get(key)!r} != {theirs.get(key)!r}")
            elif getattr(self, f.name) != getattr(other, f.name):
                out.append(f"{f.name}: {getattr(self, f.name)!r} != {getattr(other, f.name)!r}")
        return out


@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., nn.Module]
    family: Family
    defaults: dict[str, Any]


_REGISTRY: dict[str, _Entry] = {}


def register_model(name: str, family: Family) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a builder under ``name``; a second registration of a name is an error."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered (by {_REGISTRY[name].builder.__module__})")
        defaults = {
            k: p.default
            for k, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
        _REGISTRY[name] = _Entry(fn, family, defaults)
        return fn

    return deco


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model; ``model.cfg`` records its conventions and every builder argument."""
    _ensure_families_loaded()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    entry = _REGISTRY[name]
    unknown = sorted(set(kwargs) - set(entry.defaults))
    if unknown:
        raise TypeError(f"model {name!r} has no argument(s) {unknown}; it takes {sorted(entry.defaults)}")
    params = {**entry.defaults, **kwargs}
    # ``pretrained`` is where weights came from, not what the network is: keep it out of the identity.
    identity = {k: _freeze(v) for k, v in params.items() if k != "pretrained"}
    model = entry.builder(**params)
    conventions: dict[str, Any] = getattr(model, "conventions", {})
    cfg = ModelCfg(name=name, family=entry.family, params=tuple(sorted(identity.items())), **conventions)
    object.__setattr__(model, "cfg", cfg)  # a plain attribute, not a submodule / parameter
    return model


def builder_args(name: str) -> dict[str, Any]:
    """The arguments (with defaults) the builder of a registered model takes."""
    _ensure_families_loaded()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    return dict(_REGISTRY[name].defaults)


def model_cfg(model: nn.Module) -> ModelCfg:
    """The :class:`ModelCfg` of a model built by :func:`create_model` (typed access to ``model.cfg``)."""
    cfg = getattr(model, "cfg", None)
    if not isinstance(cfg, ModelCfg):
        raise TypeError(f"{type(model).__name__} was not built by create_model (no ModelCfg at .cfg)")
    return cfg


def list_models(family: Family | None = None) -> list[str]:
    """Registered model names (optionally of one family), sorted."""
    _ensure_families_loaded()
    return sorted(n for n, e in _REGISTRY.items() if family is None or e.family == family)


def _ensure_families_loaded() -> None:
    # Importing the family modules runs their @register_model decorators.
    from anonreid.models import anonymizer, inversion, reconstruction, reid  # noqa: F401
