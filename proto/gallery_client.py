"""Client of the gallery: reliable streaming publish for cameras, queries for operators.

It speaks the wire contract (``proto/anonreid/v1``) and nothing else, so that a camera node uses it
without importing the gallery: it publishes ``sighting_pb2.Sighting`` messages. The gallery's own tools,
which hold its domain types, use :class:`anonreid.gallery.client.GalleryClient`, the same client that
also takes a ``gallery.types.Sighting`` (through :meth:`GalleryClient.encode`).

``GalleryClient.publish`` keeps every sent sighting until its ack arrives. When the stream breaks
(gallery restarting, network) it reconnects with exponential backoff and jitter and first replays the
unacknowledged sightings; the gallery is idempotent by sighting id, so a sighting that was stored but
whose ack was lost comes back as ``duplicate=True`` with the same identity: nothing is lost and nothing
is stored twice. A sighting the gallery refuses (INVALID_ARGUMENT naming it in trailing metadata) is
dropped from the replay set and reported, and the rest of the stream goes on. A stream the gallery
refuses for its stream limits (RESOURCE_EXHAUSTED, reason ``too_many_streams``) is retried with backoff
like an outage; one it closed for idleness (reason ``idle_stream``) is reopened at once. The channel
pings the gallery every :data:`KEEPALIVE_S` during a call, so a gallery that vanished is noticed.

The sightings of a list go out ``publish_batch`` to a message on ``PublishBatches`` (gRPC's cost per
message was a fifth of the gallery's CPU a sighting on the one-per-message ``Publish``, docs/BENCHMARKS.md);
a gallery that does not have that method (UNIMPLEMENTED: an older one) is published to on ``Publish``
instead, from then on.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from anonreid.orchestration.config import SecurityConfig
from anonreid.proto.v1 import gallery_pb2, gallery_pb2_grpc, sighting_pb2

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                       grpc.StatusCode.ABORTED, grpc.StatusCode.CANCELLED})
KEEPALIVE_S = 30  # >= the gallery's grpc.http2.min_ping_interval_without_data_ms (10 s)


class GalleryClientError(Exception):
    """A call the gallery refused, or that kept failing past the retry budget."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str, reason: str = "") -> None:
        super().__init__(f"{method}: {code.name}: {details}")
        self.method, self.code, self.details, self.reason = method, code, details, reason


@dataclass(frozen=True)
class Rejection:
    sighting_id: str
    reason: str
    details: str


class PublishRejected(GalleryClientError):
    """Some sightings were refused as bad input; ``acks`` holds the ones that were stored."""

    def __init__(self, acks: list[gallery_pb2.PublishAck], rejected: list[Rejection]) -> None:
        first = rejected[0]
        super().__init__("Publish", grpc.StatusCode.INVALID_ARGUMENT,
                         f"{len(rejected)} sighting(s) refused, first {first.sighting_id!r}: {first.details}",
                         first.reason)
        self.acks, self.rejected = acks, rejected


class Backoff:
    """Exponential backoff with full jitter, reset after progress."""

    def __init__(self, initial_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self.initial_s, self.max_s = initial_s, max_s
        self._next = initial_s
        self._rng = rng or random.Random()

    def reset(self) -> None:
        self._next = self.initial_s

    def sleep_time(self) -> float:
        delay = self._rng.uniform(self._next / 2, self._next)
        self._next = min(self.max_s, self._next * 2)
        return delay


def _trailer(err: grpc.RpcError, key: str) -> str:
    for k, v in (err.trailing_metadata() or ()) if hasattr(err, "trailing_metadata") else ():
        if k == key:
            return v.decode() if isinstance(v, bytes) else str(v)
    return ""


class _Outbox:
    """Sightings sent but not yet acknowledged, and the source they are pulled from.

    Each stream attempt gets a request generator; a generator of an older attempt stops pulling from
    the source, and a newer one first replays everything still pending (taken under the source lock,
    so an item pulled by an old generator is either in that replay or pulled by the new one)."""

    def __init__(self, source: Iterator[Any], encode: Callable[[Any], sighting_pb2.Sighting]) -> None:
        self.source = source
        self.encode = encode
        self.pending: OrderedDict[str, sighting_pb2.Sighting] = OrderedDict()
        self.exhausted = False
        self.source_error: Exception | None = None
        self.attempt = 0
        self._source_lock = threading.Lock()
        self._pending_lock = threading.Lock()

    def requests(self, attempt: int) -> Iterator[sighting_pb2.Sighting]:
        with self._source_lock, self._pending_lock:
            replay = list(self.pending.values())
        yield from replay
        while True:
            with self._source_lock:
                if attempt != self.attempt or self.exhausted:
                    return
                try:
                    pb = self.encode(next(self.source))
                except StopIteration:
                    self.exhausted = True
                    return
                except Exception as exc:  # the caller's iterable (or an item of it) failed: finish what was sent, then raise
                    self.source_error = exc
                    self.exhausted = True
                    return
                with self._pending_lock:
                    self.pending[pb.sighting_id] = pb
            yield pb

    def batches(self, attempt: int, size: int, max_bytes: int) -> Iterator[gallery_pb2.SightingBatch]:
        """:meth:`requests` in messages of up to ``size`` sightings and ``max_bytes`` (one sighting larger
        than that goes alone); a message waits until it is full or the source ends."""
        batch: list[sighting_pb2.Sighting] = []
        nbytes = 0
        for pb in self.requests(attempt):
            n = pb.ByteSize() + 16  # the field's tag and length
            if batch and nbytes + n > max_bytes:
                yield gallery_pb2.SightingBatch(sightings=batch)
                batch, nbytes = [], 0
            batch.append(pb)
            nbytes += n
            if len(batch) >= size:
                yield gallery_pb2.SightingBatch(sightings=batch)
                batch, nbytes = [], 0
        if batch:
            yield gallery_pb2.SightingBatch(sightings=batch)

    def settle(self, sighting_id: str) -> None:
        with self._pending_lock:
            self.pending.pop(sighting_id, None)

    @property
    def done(self) -> bool:
        with self._pending_lock:
            return self.exhausted and not self.pending


class GalleryClient:
    """Talks to a gallery at ``address`` (host:port)."""

    def __init__(self, address: str, *, timeout_s: float = 10.0, retry_timeout_s: float = 30.0,
                 backoff_initial_s: float = 0.05, backoff_max_s: float = 2.0,
                 max_message_bytes: int = 4 * 1024 * 1024, metadata: Iterable[tuple[str, str]] = (),
                 publish_batch: int = 64,
                 credentials: grpc.ChannelCredentials | None = None, security: SecurityConfig | None = None) -> None:
        """``metadata`` goes with every call (e.g. ``("authorization", "Bearer ...")``);
        ``credentials`` opens a TLS channel instead of plain text; ``security`` supplies both from the
        configuration (TLS / mutual TLS certificates and ``security.token``). ``publish_batch``: sightings
        per message on ``PublishBatches`` (1 publishes on ``Publish``, one message each)."""
        if publish_batch < 1:
            raise ValueError(f"publish_batch must be at least 1, got {publish_batch}")
        if security is not None:
            from anonreid.orchestration.security.auth import client_auth

            auth = client_auth(security)
            credentials = credentials if credentials is not None else auth.credentials
            metadata = (*tuple(metadata), *auth.metadata)
        self.address = address
        self.timeout_s = timeout_s
        self.retry_timeout_s = retry_timeout_s
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.metadata = tuple(metadata)
        options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 2000),
            ("grpc.keepalive_time_ms", KEEPALIVE_S * 1000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.http2.ping_timeout_ms", 10_000),
        ]
        self.channel = (grpc.secure_channel(address, credentials, options=options) if credentials is not None
                        else grpc.insecure_channel(address, options=options))
        self.stub = gallery_pb2_grpc.GalleryStub(self.channel)
        self.reconnects = 0  # stream attempts after the first, over the client's life
        self.publish_batch = publish_batch
        self.max_message_bytes = max_message_bytes

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> GalleryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- publish --------------------------------------------------------------------------------
    def encode(self, sighting: Any) -> sighting_pb2.Sighting:
        """The wire message of a sighting given to :meth:`publish` or :meth:`query`: this client takes
        ``sighting_pb2.Sighting`` messages only (a subclass may take other types)."""
        if isinstance(sighting, sighting_pb2.Sighting):
            return sighting
        raise TypeError(f"{type(self).__name__} publishes sighting_pb2.Sighting messages, not {type(sighting).__name__}")

    def publish(self, sightings: Iterable[Any], *,
                raise_on_reject: bool = True) -> list[gallery_pb2.PublishAck]:
        """Stream sightings to the gallery and return their acks in order of arrival.

        Blocks until every sighting is acknowledged or refused. Retries (reconnect, replay) while
        the gallery is unavailable, for up to ``retry_timeout_s`` without progress; then raises
        :class:`GalleryClientError`. Refused sightings raise :class:`PublishRejected` at the end
        (carrying the acks), or are only logged when ``raise_on_reject`` is False."""
        outbox = _Outbox(iter(sightings), self.encode)
        # a list goes out publish_batch to a message; an iterator's next item may wait on the gallery (a
        # camera's pipeline), so each of its sightings goes as soon as it is given
        size = self.publish_batch if isinstance(sightings, Sequence) else 1
        acks: list[gallery_pb2.PublishAck] = []
        rejected: list[Rejection] = []
        backoff = Backoff(self.backoff_initial_s, self.backoff_max_s)
        last_progress = time.monotonic()
        while True:
            outbox.attempt += 1
            if outbox.attempt > 1:
                self.reconnects += 1
            try:
                for ack in self._publish_stream(outbox, size):
                    outbox.settle(ack.sighting_id)
                    acks.append(ack)
                    backoff.reset()
                    last_progress = time.monotonic()
                if outbox.done:
                    break
                log.warning("gallery closed the publish stream with %d unacknowledged; replaying",
                            len(outbox.pending))
            except grpc.RpcError as err:
                code, details = err.code(), err.details() or ""
                refused, reason = _trailer(err, "anonreid-sighting-id-bin"), _trailer(err, "anonreid-reason")
                if code == grpc.StatusCode.UNIMPLEMENTED and self.publish_batch > 1:
                    log.info("gallery at %s has no PublishBatches (an older one): publishing one sighting a "
                             "message on Publish", self.address)
                    self.publish_batch = 1
                    continue
                if reason == "idle_stream":  # closed because the source gave nothing for a while: reopen
                    last_progress = time.monotonic()
                    continue
                if code == grpc.StatusCode.INVALID_ARGUMENT and refused in outbox.pending:
                    outbox.settle(refused)
                    rejected.append(Rejection(refused, reason, details))
                    last_progress = time.monotonic()
                    if outbox.done:
                        break
                    continue
                retryable = code in RETRYABLE or reason == "too_many_streams"
                if not retryable or time.monotonic() - last_progress > self.retry_timeout_s:
                    raise GalleryClientError("Publish", code, details, reason) from err
                delay = backoff.sleep_time()
                log.info("publish stream to %s failed (%s); retrying in %.2f s with %d unacknowledged",
                         self.address, code.name, delay, len(outbox.pending))
                time.sleep(delay)
        if outbox.source_error is not None:
            raise outbox.source_error
        if rejected:
            if raise_on_reject:
                raise PublishRejected(acks, rejected)
            for r in rejected:
                log.warning("gallery refused sighting %s: %s", r.sighting_id, r.details)
        return acks

    def _publish_stream(self, outbox: _Outbox, size: int) -> Iterator[gallery_pb2.PublishAck]:
        """One stream attempt's acks, in order; ``size`` sightings a message."""
        if self.publish_batch == 1:
            yield from self.stub.Publish(outbox.requests(outbox.attempt), metadata=self.metadata)
            return
        batches = outbox.batches(outbox.attempt, size, self.max_message_bytes // 2)
        for reply in self.stub.PublishBatches(batches, metadata=self.metadata):
            yield from reply.acks

    # -- queries --------------------------------------------------------------------------------
    def _call(self, name: str, fn: Callable[..., T], request: Any, retry: bool = True) -> T:
        backoff = Backoff(self.backoff_initial_s, self.backoff_max_s)
        deadline = time.monotonic() + self.retry_timeout_s
        while True:
            try:
                return fn(request, timeout=self.timeout_s, metadata=self.metadata)
            except grpc.RpcError as err:
                code, details = err.code(), err.details() or ""
                if not retry or code not in RETRYABLE or time.monotonic() > deadline:
                    raise GalleryClientError(name, code, details, _trailer(err, "anonreid-reason")) from err
                time.sleep(backoff.sleep_time())

    def list_identities(self, limit: int = 0, seen_since_us: int = 0, camera_id: str = ""
                        ) -> list[gallery_pb2.IdentitySummary]:
        req = gallery_pb2.ListIdentitiesRequest(limit=limit, seen_since_us=seen_since_us, camera_id=camera_id)
        return list(self._call("ListIdentities", self.stub.ListIdentities, req).identities)

    def trajectory(self, identity_id: str) -> gallery_pb2.Trajectory:
        return self._call("GetTrajectory", self.stub.GetTrajectory,
                          gallery_pb2.GetTrajectoryRequest(identity_id=identity_id))

    def query(self, *, sighting_id: str = "", sighting: Any = None,
              k: int = 0, exclude_same_camera: bool = False) -> list[gallery_pb2.Match]:
        """Query by example: a stored sighting id, or a sighting (its embedding) supplied by the caller."""
        req = gallery_pb2.QueryByExampleRequest(k=k, exclude_same_camera=exclude_same_camera)
        if sighting_id:
            req.sighting_id = sighting_id
        elif sighting is not None:
            req.sighting.CopyFrom(self.encode(sighting))
        return list(self._call("QueryByExample", self.stub.QueryByExample, req).matches)

    def occupancy(self, at_us: int = 0, window_us: int = 0) -> list[gallery_pb2.CameraOccupancy]:
        req = gallery_pb2.OccupancyRequest(at_us=at_us, window_us=window_us)
        return list(self._call("Occupancy", self.stub.Occupancy, req).cameras)

    def forget(self, identity_id: str, reason: str = "") -> int:
        """Erase an identity; returns the sightings erased (0 when it was already forgotten)."""
        req = gallery_pb2.ForgetRequest(identity_id=identity_id, reason=reason)
        return int(self._call("Forget", self.stub.Forget, req).sightings_erased)

    def health(self, service: str = "") -> str:
        """The server's health status name (SERVING, NOT_SERVING, ...)."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self.channel)
        resp = self._call("Health.Check", stub.Check, health_pb2.HealthCheckRequest(service=service))
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
