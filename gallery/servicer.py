"""gRPC servicer of the gallery: protobuf <-> domain types only.

Every method converts its request, calls :class:`~anonreid.gallery.core.Gallery`, and converts the
answer. Errors are the core's domain exceptions; the server's interceptor turns them into status codes.
The module-level converters are shared with the client (which publishes domain sightings too).

Publish streams are admitted by a :class:`~anonreid.gallery.streams.StreamLimiter` (RESOURCE_EXHAUSTED
beyond a cap), closed after ``idle_timeout_s`` without a message (DEADLINE_EXCEEDED), and a camera
token may publish only as the cameras it is bound to (PERMISSION_DENIED naming the camera, recorded
through ``on_denied`` in the access log).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from anonreid.gallery.core import Gallery
from anonreid.gallery.errors import IdleTimeout, InvalidInput, PermissionDenied
from anonreid.gallery.streams import StreamLimiter, peer_host
from anonreid.gallery.types import (
    Ack,
    Box,
    CameraOccupancy,
    IdentitySummary,
    Match,
    Sighting,
    StreamClock,
    Trajectory,
)
from anonreid.orchestration.security.auth import ANONYMOUS, DeniedHook, current_principal
from anonreid.orchestration.security.roles import GALLERY_SERVICE
from anonreid.orchestration.security.tokens import Principal
from anonreid.proto.v1 import gallery_pb2, gallery_pb2_grpc, sighting_pb2

T = TypeVar("T")

_CLOCK_KINDS = {sighting_pb2.StreamClock.WALL: "wall", sighting_pb2.StreamClock.RECORDING: "recording"}
_CLOCK_ENUMS = {kind: enum for enum, kind in _CLOCK_KINDS.items()}


def clock_from_pb(pb: sighting_pb2.StreamClock) -> StreamClock:
    """A kind this gallery does not know (a newer camera's) reads as not said."""
    return StreamClock(_CLOCK_KINDS.get(pb.kind, ""), pb.epoch_us if pb.HasField("epoch_us") else None)


def clock_to_pb(c: StreamClock) -> sighting_pb2.StreamClock:
    out = sighting_pb2.StreamClock(kind=_CLOCK_ENUMS.get(c.kind, sighting_pb2.StreamClock.KIND_UNSPECIFIED))
    if c.epoch_us is not None:
        out.epoch_us = c.epoch_us
    return out


def sighting_from_pb(pb: sighting_pb2.Sighting) -> Sighting:
    b = pb.box
    return Sighting(
        sighting_id=pb.sighting_id,
        camera_id=pb.camera_id,
        tracklet_id=pb.tracklet_id,
        start_us=pb.span.start_us,
        end_us=pb.span.end_us,
        embedding=np.asarray(pb.embedding, dtype=np.float32),
        box=Box(b.x1, b.y1, b.x2, b.y2, b.num_boxes, b.mean_area, b.velocity_x, b.velocity_y),
        quality=pb.quality,
        model_version=pb.model_version,
        published_at_us=pb.published_at_us,
        event_at_us=pb.event_at_us,
        clock=clock_from_pb(pb.clock),
    )


def sighting_to_pb(s: Sighting) -> sighting_pb2.Sighting:
    b = s.box
    return sighting_pb2.Sighting(
        sighting_id=s.sighting_id,
        camera_id=s.camera_id,
        tracklet_id=s.tracklet_id,
        span=sighting_pb2.TimeSpan(start_us=s.start_us, end_us=s.end_us),
        box=sighting_pb2.BoxSummary(x1=b.x1, y1=b.y1, x2=b.x2, y2=b.y2, num_boxes=b.num_boxes,
                                    mean_area=b.mean_area, velocity_x=b.velocity_x, velocity_y=b.velocity_y),
        embedding=np.asarray(s.embedding, dtype=np.float32).tolist(),
        quality=s.quality,
        model_version=s.model_version,
        published_at_us=s.published_at_us,
        event_at_us=s.event_at_us,
        clock=clock_to_pb(s.clock),
    )


def ack_to_pb(ack: Ack) -> gallery_pb2.PublishAck:
    out = gallery_pb2.PublishAck(sighting_id=ack.sighting_id, identity_id=ack.identity_id,
                                 duplicate=ack.duplicate, similarity=ack.similarity,
                                 new_identity=ack.new_identity)
    if ack.decision is not None:
        out.rule = ack.decision.rule
        out.candidates.extend(
            gallery_pb2.AssociationCandidate(identity_id=c.identity_id, similarity=c.similarity,
                                             accepted=c.accepted, reason=c.reason, detail=c.detail)
            for c in ack.decision.candidates)
    return out


def summary_to_pb(s: IdentitySummary) -> gallery_pb2.IdentitySummary:
    return gallery_pb2.IdentitySummary(identity_id=s.identity_id, cameras=list(s.cameras),
                                       first_seen_us=s.first_seen_us, last_seen_us=s.last_seen_us,
                                       num_sightings=s.num_sightings, first_seen_clock=clock_to_pb(s.first_seen_clock),
                                       last_seen_clock=clock_to_pb(s.last_seen_clock))


def trajectory_to_pb(t: Trajectory) -> gallery_pb2.Trajectory:
    return gallery_pb2.Trajectory(identity_id=t.identity_id, steps=[
        gallery_pb2.TrajectoryStep(camera_id=st.camera_id,
                                   span=sighting_pb2.TimeSpan(start_us=st.start_us, end_us=st.end_us),
                                   sighting_ids=list(st.sighting_ids), clock=clock_to_pb(st.clock))
        for st in t.steps], corrections=[
        gallery_pb2.IdentityCorrection(kind=c.kind, camera_id=c.camera_id, tracklet_id=c.tracklet_id,
                                       from_identity=c.from_identity, to_identity=c.to_identity, sightings=c.sightings,
                                       similarity=c.similarity, at_us=c.at_us, recorded_at_us=c.recorded_at_us)
        for c in t.corrections])


def match_to_pb(m: Match) -> gallery_pb2.Match:
    return gallery_pb2.Match(sighting_id=m.sighting_id, identity_id=m.identity_id, camera_id=m.camera_id,
                             span=sighting_pb2.TimeSpan(start_us=m.start_us, end_us=m.end_us),
                             similarity=m.similarity, clock=clock_to_pb(m.clock))


def occupancy_to_pb(cams: Iterable[CameraOccupancy]) -> gallery_pb2.OccupancyResponse:
    return gallery_pb2.OccupancyResponse(cameras=[
        gallery_pb2.CameraOccupancy(camera_id=c.camera_id, count=len(c.identity_ids), identity_ids=list(c.identity_ids))
        for c in cams])


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_END = object()


def read_ahead(requests: Iterator[T], max_batch: int, depth: int = 256,
               idle_timeout_s: float | None = None) -> Iterator[list[T]]:
    """Batches of whatever requests have already arrived (at least one, at most ``max_batch``).

    A thread reads the stream into a bounded queue (``depth``: when the gallery falls behind, the
    reader stops and gRPC flow control pushes back on the camera). An error while reading (a malformed
    message, a cancelled call) is raised after the batch read before it. When nothing arrives for
    ``idle_timeout_s`` while waiting for a batch, :class:`IdleTimeout` is raised."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        try:
            for request in requests:
                if not put(request):
                    return
            put(_END)
        except BaseException as exc:
            put(_Failed(exc))

    threading.Thread(target=reader, name="publish-read-ahead", daemon=True).start()
    try:
        while True:
            batch: list[T] = []
            try:
                item = q.get(timeout=idle_timeout_s)
            except queue.Empty:
                raise IdleTimeout(f"publish stream sent nothing for {idle_timeout_s:g} s "
                                  "(gallery.publish_idle_timeout_s): closed; open a new one to publish",
                                  reason="idle_stream", field="gallery.publish_idle_timeout_s") from None
            while True:
                if item is _END or isinstance(item, _Failed):
                    if batch:
                        yield batch
                    if isinstance(item, _Failed):
                        raise item.error
                    return
                batch.append(item)
                if len(batch) >= max_batch:
                    break
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
            yield batch
    finally:
        stop.set()


@dataclass(frozen=True)
class _Ingested:
    """One chunk of a publish stream, ingested: its requests, their acks (fewer when one was refused),
    when it was off the wire and decoded (``received``) and when Redis had it (``stored``)."""

    requests: Sequence[sighting_pb2.Sighting]
    acks: list[Ack]
    received: float
    stored: float

    def observe(self, gallery: Gallery, r: sighting_pb2.Sighting, a: Ack) -> None:
        """Record a stored sighting's ``transport`` and ``ack`` stages once its ack is sent."""
        if not a.duplicate:
            if r.published_at_us:
                gallery.metrics.observe_stage(r.camera_id, "transport", self.received - r.published_at_us / 1e6)
            gallery.metrics.observe_stage(r.camera_id, "ack", time.time() - self.stored)


def _chunks(arrivals: Iterable[list[gallery_pb2.SightingBatch]], size: int) -> Iterator[list[sighting_pb2.Sighting]]:
    """The sightings of each read's messages, in order, in chunks of at most ``size``."""
    for messages in arrivals:
        arrived = [r for m in messages for r in m.sightings]
        for i in range(0, len(arrived), size):
            yield arrived[i : i + size]


def _peer(context: Any) -> str:
    """The caller's gRPC peer address; empty outside a gRPC call."""
    return str(context.peer()) if context is not None else ""


def _authenticated() -> Principal | None:
    """The caller's token principal; None when access control is off (or outside a gRPC call)."""
    principal = current_principal()
    return principal if principal is not None and principal is not ANONYMOUS else None


def _refused_camera(batch: Sequence[sighting_pb2.Sighting], principal: Principal | None
                    ) -> tuple[int, PermissionDenied | None]:
    """The position of the first sighting ``principal`` may not publish (its camera is not one its
    token is bound to), with the error; ``(len(batch), None)`` when it may publish them all."""
    if principal is not None:
        for i, r in enumerate(batch):
            why = principal.camera_refusal(r.camera_id)
            if why:
                return i, PermissionDenied(f"sighting {r.sighting_id!r}: {why}", reason="camera_not_bound",
                                           sighting_id=r.sighting_id, field="camera_id")
    return len(batch), None


class GalleryServicer(gallery_pb2_grpc.GalleryServicer):
    """The ``anonreid.v1.Gallery`` service over a :class:`Gallery`."""

    def __init__(self, gallery: Gallery, max_batch: int = 64, *, streams: StreamLimiter | None = None,
                 idle_timeout_s: float | None = None, on_denied: DeniedHook | None = None) -> None:
        """``streams`` admits Publish streams (unbounded when None); ``on_denied`` records a publish
        refused because its token is not bound to the camera (the access log)."""
        self.gallery = gallery
        self.max_batch = max_batch
        self.streams = streams
        self.idle_timeout_s = idle_timeout_s
        self.on_denied = on_denied

    def Publish(self, request_iterator: Iterator[sighting_pb2.Sighting], context: Any
                ) -> Iterator[gallery_pb2.PublishAck]:
        """Ingest the stream in the batches that have arrived (one Redis transaction per batch);
        acks go back in order, one message each. A refused sighting ends the stream after the acks of
        those before it. Each stored sighting's ``transport`` (from its ``published_at_us``) and ``ack``
        (until its ack is sent) stages are recorded (:mod:`~anonreid.gallery.metrics`)."""
        with self._admitted(context) as principal:
            for chunk in self._ingested(read_ahead(request_iterator, self.max_batch, idle_timeout_s=self.idle_timeout_s),
                                        principal, context, "Publish"):
                for r, a in zip(chunk.requests, chunk.acks, strict=False):
                    yield ack_to_pb(a)  # resumes once gRPC has sent it
                    chunk.observe(self.gallery, r, a)

    def PublishBatches(self, request_iterator: Iterator[gallery_pb2.SightingBatch], context: Any
                       ) -> Iterator[gallery_pb2.PublishBatchAck]:
        """Publish with many sightings a message: gRPC's cost per message (a thread hand-off each way,
        a fifth of the gallery's CPU a sighting on ``Publish`` at 10k entries) is paid once a batch. The
        sightings of the messages that have arrived are ingested in order, in chunks of ``max_batch``,
        and each chunk is answered with one message of its acks; refusals, metrics and the
        persist-before-ack order are Publish's."""
        with self._admitted(context) as principal:
            messages = read_ahead(request_iterator, self.max_batch, idle_timeout_s=self.idle_timeout_s)
            for chunk in self._ingested(_chunks(messages, self.max_batch), principal, context, "PublishBatches"):
                yield gallery_pb2.PublishBatchAck(acks=[ack_to_pb(a) for a in chunk.acks])
                for r, a in zip(chunk.requests, chunk.acks, strict=False):
                    chunk.observe(self.gallery, r, a)

    @contextmanager
    def _admitted(self, context: Any) -> Iterator[Principal | None]:
        """A publish stream admitted by the stream limiter, with the caller's token principal."""
        principal = _authenticated()
        admitted = (nullcontext() if self.streams is None
                    else self.streams.admit(peer_host(_peer(context)), principal.name if principal is not None else ""))
        with admitted:
            yield principal

    def _ingested(self, chunks: Iterable[Sequence[sighting_pb2.Sighting]], principal: Principal | None, context: Any,
                  method: str) -> Iterator[_Ingested]:
        """Each chunk's sightings ingested in one :meth:`Gallery.ingest_many`; after the chunk whose
        sighting was invalid or whose camera the token may not publish as, that error is raised."""
        for requests in chunks:
            n, denied = _refused_camera(requests, principal)
            sightings = [sighting_from_pb(r) for r in requests[:n]]
            received = time.time()  # off the wire and decoded
            acks, error = self.gallery.ingest_many(sightings)
            yield _Ingested(requests, acks, received, time.time())
            if error is not None:
                raise error
            if denied is not None:
                if self.on_denied is not None and principal is not None:
                    self.on_denied(principal, GALLERY_SERVICE + method, "PERMISSION_DENIED", denied.message,
                                   _peer(context))
                raise denied

    def ListIdentities(self, request: gallery_pb2.ListIdentitiesRequest, context: Any
                       ) -> gallery_pb2.ListIdentitiesResponse:
        found = self.gallery.list_identities(request.limit, request.seen_since_us, request.camera_id)
        return gallery_pb2.ListIdentitiesResponse(identities=[summary_to_pb(s) for s in found])

    def GetTrajectory(self, request: gallery_pb2.GetTrajectoryRequest, context: Any) -> gallery_pb2.Trajectory:
        if not request.identity_id:
            raise InvalidInput("identity_id is empty", reason="empty_id", field="identity_id")
        return trajectory_to_pb(self.gallery.trajectory(request.identity_id))

    def QueryByExample(self, request: gallery_pb2.QueryByExampleRequest, context: Any
                       ) -> gallery_pb2.QueryByExampleResponse:
        which = request.WhichOneof("example")
        if which == "sighting_id":
            matches = self.gallery.query_by_example(sighting_id=request.sighting_id, k=request.k,
                                                    exclude_same_camera=request.exclude_same_camera)
        elif which == "sighting":
            matches = self.gallery.query_by_example(embedding=np.asarray(request.sighting.embedding, np.float32),
                                                    camera_id=request.sighting.camera_id, k=request.k,
                                                    exclude_same_camera=request.exclude_same_camera)
        else:
            raise InvalidInput("query needs example.sighting_id or example.sighting", reason="empty_query",
                               field="example")
        return gallery_pb2.QueryByExampleResponse(matches=[match_to_pb(m) for m in matches])

    def Occupancy(self, request: gallery_pb2.OccupancyRequest, context: Any) -> gallery_pb2.OccupancyResponse:
        return occupancy_to_pb(self.gallery.occupancy(request.at_us, request.window_us))

    def Forget(self, request: gallery_pb2.ForgetRequest, context: Any) -> gallery_pb2.ForgetResponse:
        if not request.identity_id:
            raise InvalidInput("identity_id is empty", reason="empty_id", field="identity_id")
        principal = _authenticated()  # the audit names the token's holder; the address when auth is off
        erased = self.gallery.forget(request.identity_id, request.reason,
                                     actor=principal.name if principal is not None else _peer(context))
        return gallery_pb2.ForgetResponse(identity_id=request.identity_id, sightings_erased=erased)
