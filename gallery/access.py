"""The gallery's access audit log: who queried which identity, who was refused, and when.

Every operator query and every forget that the gallery answers is appended to a bounded Redis stream
(``<prefix>:access``, trimmed to about ``maxlen`` entries) by the access-control interceptor's audit
hook (:class:`~anonreid.orchestration.security.auth.AuthInterceptor`). An entry holds the principal's
name and role, the RPC method, the identity and sighting ids the request named or the answer returned
(at most :data:`MAX_IDS` of each, with the full counts), and the wall-clock time; its ``outcome`` is
``OK``. No embedding, box or camera position is logged. Publishing (cameras) is not logged here: the
store records every sighting.

Every refused call of any gallery method is appended too (:meth:`AccessLog.denied`): ``outcome``
UNAUTHENTICATED (principal ``unauthenticated``: no token or an unknown one) or PERMISSION_DENIED (a role
calling outside its rights, a camera token publishing as a camera it is not bound to), with the reason
and the caller's address in ``detail``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import redis

from anonreid.orchestration.security.tokens import Principal

log = logging.getLogger(__name__)

MAX_IDS = 200  # ids kept per entry (a listing of thousands keeps the first ones and the count)
MAX_DETAIL = 1000  # characters of a refusal's reason kept
UNAUTHENTICATED = "unauthenticated"  # the principal of a refused call without a valid token
AUDITED = frozenset({"ListIdentities", "GetTrajectory", "QueryByExample", "Occupancy", "Forget"})


@dataclass(frozen=True)
class AccessRecord:
    """One entry of the access log, decoded."""

    entry_id: str
    principal: str
    role: str
    method: str
    identity_ids: tuple[str, ...]
    sighting_ids: tuple[str, ...]
    num_identities: int
    num_sightings: int
    at_us: int
    detail: str
    outcome: str = "OK"  # OK, or the status of a refused call (UNAUTHENTICATED, PERMISSION_DENIED)


def _ids(request: Any, response: Any, method: str) -> tuple[list[str], list[str], str]:
    """(identity ids, sighting ids, detail) named by the request or returned by the response."""
    identities: list[str] = []
    sightings: list[str] = []
    detail = ""
    if method == "ListIdentities":
        identities = [i.identity_id for i in response.identities]
    elif method == "GetTrajectory":
        identities = [request.identity_id]
        sightings = [s for step in response.steps for s in step.sighting_ids]
    elif method == "QueryByExample":
        if request.WhichOneof("example") == "sighting_id":
            sightings.append(request.sighting_id)
        else:
            detail = "example: a supplied embedding"
        sightings += [m.sighting_id for m in response.matches]
        identities = list(dict.fromkeys(m.identity_id for m in response.matches))
    elif method == "Occupancy":
        identities = sorted({i for c in response.cameras for i in c.identity_ids})
    elif method == "Forget":
        identities = [request.identity_id]
        detail = f"erased {response.sightings_erased} sighting(s); reason: {request.reason}"
    return identities, sightings, detail


class AccessLog:
    """Append to and read the bounded access stream (an :data:`AuditHook` via :meth:`record`)."""

    def __init__(self, client: redis.Redis, prefix: str = "anonreid:gallery", maxlen: int = 100_000) -> None:
        self.client = client
        self.stream = f"{prefix}:access"
        self.maxlen = maxlen

    def record(self, principal: Principal, full_method: str, request: Any, response: Any) -> None:
        """Log one answered call of an audited method (others are ignored)."""
        method = full_method.rsplit("/", 1)[-1]
        if method not in AUDITED or response is None:
            return
        identities, sightings, detail = _ids(request, response, method)
        fields = {
            "principal": principal.name, "role": principal.role.value, "method": method,
            "identities": ",".join(identities[:MAX_IDS]), "sightings": ",".join(sightings[:MAX_IDS]),
            "num_identities": len(identities), "num_sightings": len(sightings),
            "at_us": time.time_ns() // 1000, "detail": detail, "outcome": "OK",
        }
        self._append(fields)

    def denied(self, principal: Principal | None, full_method: str, code: str, message: str, peer: str) -> None:
        """Log one refused call (a :data:`~anonreid.orchestration.security.auth.DeniedHook`)."""
        fields = {
            "principal": principal.name if principal is not None else UNAUTHENTICATED,
            "role": principal.role.value if principal is not None else "",
            "method": full_method.rsplit("/", 1)[-1], "identities": "", "sightings": "",
            "num_identities": 0, "num_sightings": 0, "at_us": time.time_ns() // 1000,
            "detail": f"{message[:MAX_DETAIL]} (from {peer})", "outcome": code,
        }
        self._append(fields)

    def _append(self, fields: dict[str, str | int]) -> None:
        self.client.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]

    def records(self, count: int | None = None) -> list[AccessRecord]:
        """The newest ``count`` entries (all when None), oldest first."""
        raw: Any = self.client.xrevrange(self.stream, count=count)
        out = []
        for entry_id, f in reversed(raw):
            d = {k.decode(): v.decode() for k, v in f.items()}
            out.append(AccessRecord(
                entry_id.decode(), d["principal"], d["role"], d["method"],
                tuple(x for x in d["identities"].split(",") if x), tuple(x for x in d["sightings"].split(",") if x),
                int(d["num_identities"]), int(d["num_sightings"]), int(d["at_us"]), d.get("detail", ""),
                d.get("outcome", "OK")))
        return out
