"""The gallery's client for code that holds the gallery's domain types (its CLI, benchmarks, tests).

It is the wire client :class:`anonreid.proto.gallery_client.GalleryClient` (reliable streaming publish,
retries, TLS, tokens; a camera node uses that one, without importing the gallery) that also publishes
and queries with a :class:`~anonreid.gallery.types.Sighting`, converted as the servicer converts it.
"""

from __future__ import annotations

from typing import Any

from anonreid.gallery.servicer import sighting_to_pb
from anonreid.gallery.types import Sighting
from anonreid.proto import gallery_client
from anonreid.proto.gallery_client import GalleryClientError, PublishRejected, Rejection
from anonreid.proto.v1 import sighting_pb2

__all__ = ["GalleryClient", "GalleryClientError", "PublishRejected", "Rejection"]


class GalleryClient(gallery_client.GalleryClient):
    def encode(self, sighting: Any) -> sighting_pb2.Sighting:
        """A ``gallery.types.Sighting`` becomes its wire message; a wire message goes as it is."""
        return sighting_to_pb(sighting) if isinstance(sighting, Sighting) else super().encode(sighting)
