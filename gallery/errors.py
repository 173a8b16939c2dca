"""Domain exceptions of the gallery. Each carries a short, bounded ``reason`` (a metric label) and names
the sighting / field / identity it is about; the gRPC layer maps the class to a status code
(one interceptor in :mod:`anonreid.gallery.server`), so the core never imports grpc.
"""

from __future__ import annotations


class GalleryError(Exception):
    """Base of every error the gallery reports to a caller on purpose."""

    def __init__(self, message: str, *, reason: str, sighting_id: str = "", field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason  # bounded: used as the `reason` label of anonreid_gallery_rejected_total
        self.sighting_id = sighting_id
        self.field = field


class InvalidInput(GalleryError):
    """The request itself is wrong (bad embedding, empty id, unknown camera...): INVALID_ARGUMENT."""


class NotFound(GalleryError):
    """An identity or sighting that the gallery does not hold: NOT_FOUND."""


class PermissionDenied(GalleryError):
    """The caller's role does not allow this call: PERMISSION_DENIED."""


class Unavailable(GalleryError):
    """A dependency (Redis) is down; nothing was changed and the caller may retry: UNAVAILABLE."""


class ResourceExhausted(GalleryError):
    """A bounded resource is full (publish streams per peer, per token, in all); retry later: RESOURCE_EXHAUSTED."""


class IdleTimeout(GalleryError):
    """A stream sent nothing for longer than the configured idle timeout and was closed: DEADLINE_EXCEEDED."""
