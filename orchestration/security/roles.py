"""Roles and what each may do, for every gRPC method and console route.

- ``camera``: publish sightings, as the camera ids its token is bound to only
  (:meth:`~anonreid.orchestration.security.tokens.Principal.camera_refusal`), nothing else;
- ``operator``: queries (identities, trajectories, search, occupancy) and the live console;
- ``auditor``: audit reports and the privacy status;
- ``admin``: everything, including forget and configuration.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    CAMERA = "camera"
    OPERATOR = "operator"
    AUDITOR = "auditor"
    ADMIN = "admin"


GALLERY_SERVICE = "/anonreid.v1.Gallery/"

# gRPC full method name -> roles allowed (admin is always allowed)
METHOD_ROLES: dict[str, frozenset[Role]] = {
    GALLERY_SERVICE + "Publish": frozenset({Role.CAMERA}),
    GALLERY_SERVICE + "PublishBatches": frozenset({Role.CAMERA}),
    GALLERY_SERVICE + "ListIdentities": frozenset({Role.OPERATOR}),
    GALLERY_SERVICE + "GetTrajectory": frozenset({Role.OPERATOR}),
    GALLERY_SERVICE + "QueryByExample": frozenset({Role.OPERATOR}),
    GALLERY_SERVICE + "Occupancy": frozenset({Role.OPERATOR}),
    GALLERY_SERVICE + "Forget": frozenset(),  # admin only
}

# Methods every caller may use without a token: health checks and reflection.
PUBLIC_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/",
                          "/grpc.reflection.v1.ServerReflection/")

# console route name -> roles allowed (admin is always allowed)
CONSOLE_ROUTE_ROLES: dict[str, frozenset[Role]] = {
    "cameras": frozenset({Role.OPERATOR}),
    "tile": frozenset({Role.OPERATOR}),
    "identities": frozenset({Role.OPERATOR}),
    "trajectory": frozenset({Role.OPERATOR}),
    "search": frozenset({Role.OPERATOR}),
    "occupancy": frozenset({Role.OPERATOR}),
    "privacy": frozenset({Role.OPERATOR, Role.AUDITOR}),
    "forget": frozenset(),  # admin only
}


def allowed(role: Role, allowed_roles: frozenset[Role]) -> bool:
    return role is Role.ADMIN or role in allowed_roles


def method_allowed(role: Role, full_method: str) -> bool:
    """Unknown methods are refused (deny by default)."""
    if full_method.startswith(PUBLIC_METHOD_PREFIXES):
        return True
    roles = METHOD_ROLES.get(full_method)
    return roles is not None and allowed(role, roles)
