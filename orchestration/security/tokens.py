"""Bearer tokens with roles, kept as SHA-256 hashes in a YAML file (the plaintext is shown once).

File format::

    tokens:
      - {name: cam1, role: camera, sha256: 9f86d08..., cameras: [cam1]}
      - {name: alice, role: operator, sha256: ...}

``anonreid tokens create --name alice --role operator --file tokens.yaml`` appends one and prints the
token. Services load the file at start; a request's ``authorization: Bearer <token>`` header (gRPC
metadata or HTTP) is hashed and looked up, compared in constant time.

A camera token is bound to the camera ids it may publish as (``--camera cam1,cam2``; stored as
``cameras``). A camera token without ``cameras`` (made before the binding existed) still loads, but the
gallery refuses its publishes with PERMISSION_DENIED saying how to recreate it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml

from anonreid.orchestration.infra.files import load_yaml
from anonreid.orchestration.security.roles import Role


class TokenError(ValueError):
    """A malformed token file."""


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    cameras: tuple[str, ...] = ()  # the camera ids a camera token may publish as

    def camera_refusal(self, camera_id: str) -> str:
        """Why this principal may not publish as ``camera_id``; "" when it may. A camera token publishes
        only as its bound cameras; other roles are not bound (the role check decides whether they may
        publish at all)."""
        if self.role is not Role.CAMERA or camera_id in self.cameras:
            return ""
        if not self.cameras:
            return (f"camera token {self.name!r} is bound to no camera; recreate it with "
                    f"`anonreid tokens create --name {self.name} --role camera --camera <camera ids>`")
        return f"token {self.name!r} may publish as camera {', '.join(self.cameras)} only, not as {camera_id!r}"


def parse_cameras(values: list[str] | tuple[str, ...] | str) -> tuple[str, ...]:
    """Camera ids from ``cam1,cam2`` strings (or a list of them): stripped, de-duplicated, in order."""
    items = [values] if isinstance(values, str) else list(values)
    return tuple(dict.fromkeys(c.strip() for v in items for c in str(v).split(",") if c.strip()))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    def __init__(self, entries: dict[str, Principal]) -> None:
        self._by_hash = entries

    @classmethod
    def load(cls, path: str | Path) -> TokenStore:
        path = Path(path)
        data = load_yaml(path, "token file", TokenError) or {}
        entries: dict[str, Principal] = {}
        for i, item in enumerate(data.get("tokens") or []):
            where = f"{path}, tokens[{i}]"
            if not isinstance(item, dict) or not {"name", "role", "sha256"} <= set(item):
                raise TokenError(f"{where}: needs name, role and sha256")
            try:
                role = Role(item["role"])
            except ValueError:
                raise TokenError(f"{where}: unknown role {item['role']!r} (one of {[r.value for r in Role]})") from None
            digest = str(item["sha256"]).lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise TokenError(f"{where}: sha256 must be 64 hex digits")
            cameras = item.get("cameras") or []
            if not isinstance(cameras, list) or not all(isinstance(c, str) and c for c in cameras):
                raise TokenError(f"{where}: cameras must be a list of camera ids")
            if cameras and role is not Role.CAMERA:
                raise TokenError(f"{where}: cameras binds camera tokens only, not role {role.value}")
            entries[digest] = Principal(str(item["name"]), role, tuple(cameras))
        return cls(entries)

    def principals(self) -> list[Principal]:
        return list(self._by_hash.values())

    def authenticate(self, token: str | None) -> Principal | None:
        if not token:
            return None
        digest = hash_token(token)
        for known, principal in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                return principal
        return None


def bearer_token(header_value: str | None) -> str | None:
    """The token of an ``authorization: Bearer <token>`` header, or None."""
    if not header_value:
        return None
    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def create_token(path: str | Path, name: str, role: Role | str, cameras: tuple[str, ...] | list[str] = ()) -> str:
    """Append a new token for ``name`` with ``role`` to the file (created if missing); return the token.
    A camera token needs ``cameras``, the camera ids it may publish as; other roles take none."""
    path = Path(path)
    role = Role(role)
    cameras = parse_cameras(cameras)
    if role is Role.CAMERA and not cameras:
        raise TokenError("a camera token must name the cameras it publishes as (--camera cam1[,cam2])")
    if cameras and role is not Role.CAMERA:
        raise TokenError(f"--camera binds camera tokens only, not role {role.value}")
    data = load_yaml(path, "token file", TokenError) if path.exists() else None
    data = data or {}
    token = secrets.token_urlsafe(32)
    entry: dict[str, object] = {"name": name, "role": role.value, "sha256": hash_token(token)}
    if cameras:
        entry["cameras"] = list(cameras)
    data.setdefault("tokens", []).append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    path.chmod(0o600)
    return token
