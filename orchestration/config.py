"""Typed configuration: defaults in code, then a YAML file, then ``--set key=value`` overrides, then frozen.

Every section is a pydantic model that rejects unknown keys; :func:`load_config` turns validation
failures into one :class:`ConfigError` whose message names each bad key (dotted path) and the type it
expects, e.g. ``gallery.port: expected int, got 'abc'``. The defaults run the four-camera demo on one
machine (embedded Redis, local Ray, CPU).
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class EventsConfig(Section):
    window_us: int = Field(33_333, gt=0, description="fixed window length in microseconds (33.3 ms)")
    num_bins: int = Field(5, gt=1, description="temporal bins of the voxel grid (B)")


class RedisConfig(Section):
    url: str = Field("", description="redis://[:password@]host:port/db; empty starts an embedded Redis")
    password: str = Field("", description="password for url (or set it in the url)")
    embedded_dir: str = Field(".build/redis", description="data directory of the embedded Redis")


class RayConfig(Section):
    address: str = Field("", description="join an existing Ray cluster (ray://... or host:port); empty starts one")
    num_cpus: int = Field(2, ge=0, description="CPUs for a local Ray instance (0 = all)")
    namespace: str = Field("anonreid", description="Ray namespace for the named actors")


class GalleryConfig(Section):
    host: str = Field("127.0.0.1", description="gRPC bind / connect host")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 = any free port)")
    metrics_port: int = Field(9100, ge=0, le=65535, description="Prometheus metrics port")


class Config(Section):
    events: EventsConfig = EventsConfig()
    redis: RedisConfig = RedisConfig()
    ray: RayConfig = RayConfig()
    gallery: GalleryConfig = GalleryConfig()


class ConfigError(ValueError):
    """Invalid configuration; the message names each bad key and the expected type."""


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"a mapping ({annotation.__name__})"
    return getattr(annotation, "__name__", str(annotation))


def _expected_type(model: type[BaseModel], loc: tuple[int | str, ...]) -> str | None:
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        else:  # list / dict element
            args = typing.get_args(current)
            current = args[-1] if args else Any
    return _type_name(current)


def _format_errors(exc: ValidationError, model: type[BaseModel], origin: str) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "<root>"
        if err["type"] == "extra_forbidden":
            parent = _expected_type(model, loc[:-1]) if loc[:-1] else model.__name__
            lines.append(f"{key}: unknown key (not a field of {parent})")
            continue
        expected = _expected_type(model, loc)
        got = err.get("input")
        detail = err["msg"]
        lines.append(f"{key}: expected {expected}, got {got!r} ({detail})")
    return f"invalid configuration ({origin}):\n  " + "\n  ".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"gallery.port=50052"`` -> (["gallery", "port"], 50052); the value is read as a YAML scalar."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like key.path=value")
    return [p.strip() for p in key.split(".")], yaml.safe_load(raw) if raw.strip() else ""


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults, then the YAML file at ``path``, then ``key=value`` overrides; validated and frozen."""
    data: dict[str, Any] = {}
    origin = "defaults"
    if path is not None:
        path = Path(path)
        try:
            loaded = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping, got {type(loaded).__name__}")
        data = loaded or {}
        origin = str(path)
    for text in overrides:
        keys, value = parse_override(text)
        nested: dict[str, Any] = {keys[-1]: value}
        for k in reversed(keys[:-1]):
            nested = {k: nested}
        data = _merge(data, nested)
    if overrides:
        origin += " + --set " + " ".join(overrides)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, Config, origin)) from None


def config_to_yaml(config: BaseModel) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
