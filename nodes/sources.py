"""Event sources of a camera node: the live world, file replay, and Redis Streams ingest.

Every source yields validated event packets (the one event dtype of anonreid.events.types) in time
order and exposes ``sensor``, ``clock_anchor`` (wall time of stream time 0 when the stream is paced
by the wall clock, for end-to-end latency; ``None`` otherwise), ``clock_kind`` (``"wall"`` for a live
source, whose stream time + anchor is the wall clock; ``"recording"`` for a replay, whose stream time is
the recording's own clock, even when paced), ``ground_truth`` (the world's
evaluation side channel, simulation only) and ``commit(end_us)``, which the node calls once every
window ending at ``end_us`` has been processed (the Redis source acknowledges its messages there, so
a node that dies mid-stream resumes from its pending entries on restart).

A :class:`SourceSpec` is a small picklable description, so a Ray actor can build its own source on
the node it is placed on (a live world renders where the camera runs; a file is read where it lies).

Redis stream layout (``events:<camera>``, written by ``anonreid gateway push``): one entry per packet
with fields ``events`` (the packet's raw bytes, little-endian EVENT_DTYPE records), ``sensor``
(``WxH``), and a last entry with ``eos=1`` at the end of a finite push. ``events:<camera>:meta`` is a
hash holding ``sensor``.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from anonreid.events.types import EVENT_DTYPE, EventFormatError, SensorSize, empty_events, validate_events

log = logging.getLogger(__name__)

BadInputFn = Callable[[str], None]


def stream_key(camera_id: str) -> str:
    return f"events:{camera_id}"


def meta_key(camera_id: str) -> str:
    return f"events:{camera_id}:meta"


@dataclass(frozen=True)
class SourceSpec:
    """What a camera node reads (picklable; :func:`open_source` builds the source where it runs)."""

    kind: Literal["live", "file", "redis"]
    camera_id: str
    path: str = ""  # file: any format anonreid.events.io reads
    realtime: bool = True  # live / file: pace packets by the wall clock
    speed: float = 1.0  # file: replay speed when realtime
    packet_us: int = 10_000
    start_us: int = 0  # live: stream time to start at
    end_us: int = 0  # live: stream time to end at (0 = endless)
    render_ahead_s: float = 0.0  # live, realtime: render the world up to this far ahead of the clock
    world: dict[str, Any] = field(default_factory=dict)  # live: WorldConfig fields (empty = defaults)
    sensor: str = ""  # file / redis: "WxH" when the file / stream does not say
    time_unit: str = ""  # file: timestamp unit when the file does not say ("100us", "1e-4"; "" = the format's)
    redis_url: str = ""
    redis_password: str = ""
    group: str = "camera"  # redis: consumer group
    consumer: str = ""  # redis: consumer name (default: the camera id, so a restarted node resumes)
    block_ms: int = 200


class EventSource:
    """Base class: iterate :meth:`packets`; call :meth:`commit` after processing; :meth:`close` at the end."""

    camera_id: str
    sensor: SensorSize
    clock_anchor: float | None = None
    clock_kind = "recording"  # "wall": stream time + clock_anchor is the wall clock (nodes/stream_clock.py)
    ground_truth: Callable[[int, int, bool], list[Any]] | None = None
    window_t0_us: int | None = None  # window grid anchor (None: the first event)
    #: every event before this stream time has been yielded. A paced source waiting through a gap in its
    #: recording raises it as the clock runs and yields an empty packet each time (a tick), so the node
    #: completes the gap's windows as they pass instead of all at once when the next event comes
    watermark_us: int | None = None

    def __init__(self) -> None:
        self._stop = threading.Event()
        self.on_bad_input: BadInputFn = lambda reason: None

    def packets(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def commit(self, end_us: int) -> None:
        """Every event before ``end_us`` has been processed (or dropped by the node's policy)."""

    def close(self) -> None:
        self._stop.set()


def split_packets(events: np.ndarray, packet_us: int) -> Iterator[np.ndarray]:
    """Split a time-sorted event array at multiples of ``packet_us``."""
    if len(events) == 0:
        return
    bucket = events["t"] // packet_us
    cuts = np.flatnonzero(np.diff(bucket)) + 1
    start = 0
    for cut in [*cuts.tolist(), len(events)]:
        yield events[start:cut]
        start = cut


class LiveWorldSource(EventSource):
    """One camera of the live synthetic world (``LiveWorld.camera_stream``), real-time paced or not.

    With ``render_ahead_s`` (real time only) the world is rendered on a background thread up to that
    far ahead of the clock, and that much is rendered before the source is ready; the packets still
    come out paced by the wall clock. The simulated sensor is the stimulus, not the system under test:
    rendered ahead, it does not compete with the camera pipeline for the CPU while the clock runs.
    """

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__()
        from anonreid.events.world import LiveWorld
        from anonreid.orchestration.config import WorldConfig

        if spec.end_us and spec.end_us <= spec.start_us:
            raise ValueError(f"camera {spec.camera_id}: end_us {spec.end_us} is not after start_us {spec.start_us}")
        self.spec = spec
        self.camera_id = spec.camera_id
        self.world = LiveWorld(WorldConfig(**spec.world))
        self.sensor = _world_sensor(self.world)
        self.window_us = int(self.world.config.window_us)
        self.window_t0_us = spec.start_us - spec.start_us % self.window_us
        self.ground_truth = self._ground_truth
        self.clock_kind = "wall" if spec.realtime else "recording"  # live, or the world's clock run offline
        self._ahead: RenderedAhead | None = None
        if spec.realtime and spec.render_ahead_s > 0:
            self._ahead = RenderedAhead(self._rendered(), spec.packet_us, spec.render_ahead_s, spec.camera_id)
            self._ahead.wait_filled()

    @property
    def render_cpu_s(self) -> float | None:
        """CPU seconds spent rendering ahead (None when rendering in step with the clock)."""
        return self._ahead.cpu_s if self._ahead is not None else None

    def _ground_truth(self, t0_us: int, t1_us: int, frames: bool = False) -> list[Any]:
        """The world's ground truth of windows starting in [t0, t1). Without ``frames`` only boxes and
        identities are computed (cheap: no rendering, one pose evaluation per person for the whole
        range), which is all that evaluation needs; reference frames (a full render each) are
        fetched only for the sampled audit windows."""
        return list(self.world.ground_truth(self.camera_id, t0_us, t1_us, with_frames=frames))

    def _rendered(self) -> Iterator[np.ndarray]:
        """The stream, unpaced, up to ``end_us``."""
        spec = self.spec
        stream = self.world.camera_stream(spec.camera_id, start_us=spec.start_us, realtime=False,
                                          packet_us=spec.packet_us)
        t = spec.start_us
        for packet in stream:
            yield packet
            t += spec.packet_us
            if spec.end_us and t >= spec.end_us:
                return

    def packets(self) -> Iterator[np.ndarray]:
        from anonreid.events.world.live import pace

        spec = self.spec
        stream: Iterator[np.ndarray] = iter(self._ahead) if self._ahead is not None else self._rendered()
        if spec.realtime:
            self.clock_anchor = time.time() - spec.start_us / 1e6
            stream = pace(stream, spec.packet_us)
        for packet in stream:
            if self._stop.is_set():
                return
            yield packet

    def close(self) -> None:
        super().close()
        if self._ahead is not None:
            self._ahead.close()


class RenderedAhead:
    """Iterate packets that a background thread pulls from ``packets`` and keeps up to ``ahead_s``
    (of ``packet_us`` packets) ahead of the consumer; the buffer, and so memory, is bounded by it."""

    def __init__(self, packets: Iterator[np.ndarray], packet_us: int, ahead_s: float, name: str) -> None:
        self._source = packets
        self._capacity = max(1, int(ahead_s * 1e6 // packet_us))
        self._buffer: collections.deque[np.ndarray] = collections.deque()
        self._cond = threading.Condition()
        self._done = False
        self._closed = False
        self._error: BaseException | None = None
        self.cpu_s = 0.0
        self._thread = threading.Thread(target=self._fill, name=f"render-{name}", daemon=True)
        self._thread.start()

    def _fill(self) -> None:
        cpu0 = time.thread_time()
        try:
            for packet in self._source:
                self.cpu_s = time.thread_time() - cpu0
                with self._cond:
                    while len(self._buffer) >= self._capacity and not self._closed:
                        self._cond.wait()
                    if self._closed:
                        return
                    self._buffer.append(packet)
                    self._cond.notify_all()
        except BaseException as exc:  # surfaced to the consumer
            self._error = exc
        finally:
            self.cpu_s = time.thread_time() - cpu0
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def wait_filled(self, timeout: float | None = None) -> bool:
        """Block until the buffer is full or the stream has ended; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._buffer) >= self._capacity or self._done, timeout)

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._buffer) or self._done or self._closed)
                if self._buffer:
                    packet = self._buffer.popleft()
                    self._cond.notify_all()
                elif self._error is not None:
                    raise self._error
                else:
                    return
            yield packet

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)


def _world_sensor(world: Any) -> SensorSize:
    sensor = getattr(world, "sensor", None)
    if isinstance(sensor, SensorSize):
        return sensor
    return SensorSize.parse(str(world.config.resolution))


class FileSource(EventSource):
    """Replay of an event file (any format anonreid.events.io reads), paced or as fast as possible."""

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__()
        from anonreid.events.io import open_events

        if not spec.path:
            raise ValueError(f"camera {spec.camera_id}: a file source needs a path")
        if spec.speed <= 0:
            raise ValueError(f"camera {spec.camera_id}: replay speed must be > 0, got {spec.speed}")
        self.spec = spec
        self.camera_id = spec.camera_id
        self.reader = open_events(Path(spec.path), sensor=SensorSize.parse(spec.sensor) if spec.sensor else None,
                                  time_unit=spec.time_unit or None)
        sensor = self.reader.sensor
        if sensor is None:
            raise ValueError(f"{spec.path}: the file does not record its sensor size; give it (--sensor WxH)")
        self.sensor = sensor

    def packets(self) -> Iterator[np.ndarray]:
        spec = self.spec
        t_first: int | None = None
        wall0 = time.time()
        for chunk in self.reader:
            for packet in split_packets(chunk, spec.packet_us):
                if self._stop.is_set():
                    return
                if spec.realtime:
                    if t_first is None:
                        t_first = int(packet["t"][0])
                        wall0 = time.time()
                        self.clock_anchor = wall0 - t_first / 1e6 / spec.speed
                    yield from self._gap_ticks(int(packet["t"][0]), t_first, wall0)
                    due = wall0 + (int(packet["t"][-1]) - t_first) / 1e6 / spec.speed
                    delay = due - time.time()
                    if delay > 0:
                        self._stop.wait(delay)
                yield packet

    def _gap_ticks(self, next_t: int, t_first: int, wall0: float) -> Iterator[np.ndarray]:
        """While the paced clock has not reached the next event (``next_t``) by more than a packet, wait a
        packet's time at a time and yield an empty packet with the watermark raised to where the clock
        is: a gap in the recording (the recorder paused, a chunk missing) passes window by window, as it
        would live, so a track ending before it is closed and published when it ends, not after the gap."""
        speed, tick_s = self.spec.speed, self.spec.packet_us / 1e6 / self.spec.speed
        while not self._stop.is_set():
            now_t = t_first + int((time.time() - wall0) * speed * 1e6)
            if next_t - now_t <= self.spec.packet_us:
                return
            if self.watermark_us is None or now_t > self.watermark_us:
                self.watermark_us = now_t
                yield empty_events()
            self._stop.wait(tick_s)


class RedisStreamSource(EventSource):
    """Ingest from the Redis stream ``events:<camera>`` through a consumer group.

    On start the consumer first re-reads its own pending (delivered but unacknowledged) entries, so a
    node restarted after a crash resumes where it was; then it reads new entries. Entries are
    acknowledged in :meth:`commit`, once the windows holding their events have been processed.
    A malformed entry is counted (``on_bad_input``), acknowledged so it is not redelivered forever,
    and skipped. A finite push ends with an ``eos`` entry. A ``watermark`` entry (a paced push in a gap of
    its recording) raises :attr:`watermark_us`; an event before it is refused like time going backwards.
    """

    def __init__(self, spec: SourceSpec, client: Any = None) -> None:
        super().__init__()
        from anonreid.orchestration.redis_service import connect

        self.spec = spec
        self.camera_id = spec.camera_id
        self.key = stream_key(spec.camera_id)
        self.group = spec.group
        self.consumer = spec.consumer or spec.camera_id
        self.redis = client if client is not None else connect(spec.redis_url, spec.redis_password or None)
        sensor = spec.sensor or _decode(self.redis.hget(meta_key(spec.camera_id), "sensor"))
        if not sensor:
            raise ValueError(
                f"camera {spec.camera_id}: no sensor size for Redis stream {self.key} "
                f"(give one, or push with `anonreid gateway push` first, which records it in {meta_key(spec.camera_id)})"
            )
        self.sensor = SensorSize.parse(sensor)
        self._unacked: list[tuple[bytes, int]] = []  # (entry id, last event time) in delivery order
        self._lock = threading.Lock()
        self._last_t: int | None = None
        self.acked = 0
        try:
            self.redis.xgroup_create(self.key, self.group, id="0", mkstream=True)
        except Exception as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def packets(self) -> Iterator[np.ndarray]:
        cursor = "0"  # own pending entries first (an id: the history after it), then new ones (">")
        while not self._stop.is_set():
            history = cursor != ">"
            block = None if history else self.spec.block_ms
            resp: Any = self.redis.xreadgroup(self.group, self.consumer, {self.key: cursor}, count=64, block=block)
            entries: list[tuple[bytes, dict[bytes, bytes]]] = resp[0][1] if resp else []
            if history:
                if not entries:
                    cursor = ">"
                    continue
                cursor = _decode(entries[-1][0])  # continue through the pending list
            for entry_id, fields in entries:
                if fields.get(b"eos"):
                    self._ack([entry_id])
                    return
                packet = (self._decode_watermark(entry_id, fields) if b"events" not in fields and b"watermark" in fields
                          else self._decode_packet(entry_id, fields))
                if packet is None:
                    continue
                with self._lock:
                    self._unacked.append((entry_id, int(packet["t"][-1]) if len(packet) else -1))
                yield packet

    def _decode_watermark(self, entry_id: bytes, fields: dict[bytes, bytes]) -> np.ndarray | None:
        """A ``watermark`` entry (``gateway push`` of a paced replay in a gap): no event before this stream
        time is still to come. Raises :attr:`watermark_us` and gives an empty packet (a tick); a
        malformed one is counted, acknowledged and skipped, as a malformed events entry is."""
        raw = fields[b"watermark"]
        try:
            mark = int(raw)
        except ValueError:
            log.warning("redis %s entry %s: 'watermark' is not an integer stream time: %r", self.key,
                        _decode(entry_id), raw[:40])
            self.on_bad_input("decode_error")
            self._ack([entry_id])
            return None
        if self.watermark_us is None or mark > self.watermark_us:
            self.watermark_us = mark
        return empty_events()

    def _decode_packet(self, entry_id: bytes, fields: dict[bytes, bytes]) -> np.ndarray | None:
        source = f"redis {self.key} entry {_decode(entry_id)}"
        raw = fields.get(b"events")
        try:
            if raw is None:
                raise EventFormatError(source, "entry has no 'events' field")
            if len(raw) % EVENT_DTYPE.itemsize:
                raise EventFormatError(
                    source, f"'events' has {len(raw)} bytes, not a multiple of the {EVENT_DTYPE.itemsize}-byte event"
                )
            packet = np.frombuffer(raw, dtype=EVENT_DTYPE).copy()
            # an event before a watermark already given would fall in a window the node has closed
            marks = [t for t in (self._last_t, self.watermark_us) if t is not None]
            validate_events(packet, self.sensor, source=source, previous_t=max(marks) if marks else None)
        except EventFormatError as exc:
            reason = "time_backwards" if "backwards" in exc.reason else "out_of_sensor" if "outside" in exc.reason else "decode_error"
            log.warning("%s", exc)
            self.on_bad_input(reason)
            self._ack([entry_id])
            return None
        if len(packet):
            self._last_t = int(packet["t"][-1])
        return packet

    def commit(self, end_us: int) -> None:
        with self._lock:
            done = [eid for eid, t in self._unacked if t < end_us]
            self._unacked = [(eid, t) for eid, t in self._unacked if t >= end_us]
        self._ack(done)

    def flush_acks(self) -> None:
        """Acknowledge everything delivered (end of stream: the node processed every window)."""
        with self._lock:
            done = [eid for eid, _ in self._unacked]
            self._unacked = []
        self._ack(done)

    def _ack(self, ids: list[bytes]) -> None:
        if ids:
            self.redis.xack(self.key, self.group, *ids)
            self.acked += len(ids)


def _decode(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def open_source(spec: SourceSpec) -> EventSource:
    """Build the source a :class:`SourceSpec` describes."""
    if spec.kind == "live":
        return LiveWorldSource(spec)
    if spec.kind == "file":
        return FileSource(spec)
    if spec.kind == "redis":
        return RedisStreamSource(spec)
    raise ValueError(f"unknown source kind {spec.kind!r} (expected live, file or redis)")


def push_file(
    client: Any,
    path: str | Path,
    camera_id: str,
    packet_us: int = 10_000,
    realtime: bool = False,
    speed: float = 1.0,
    maxlen: int = 100_000,
    sensor: SensorSize | None = None,
    end_of_stream: bool = True,
    time_unit: str = "",
) -> dict[str, int]:
    """Edge-side publisher: stream an event file into ``events:<camera>`` (one entry per packet).

    The stream is bounded (``MAXLEN ~ maxlen`` entries); returns counts of packets and events.
    """
    spec = SourceSpec(
        kind="file", camera_id=camera_id, path=str(path), realtime=realtime, speed=speed, packet_us=packet_us,
        sensor=str(sensor) if sensor else "", time_unit=time_unit,
    )
    source = FileSource(spec)
    key = stream_key(camera_id)
    client.hset(meta_key(camera_id), mapping={"sensor": str(source.sensor)})
    packets = events = 0
    pipe = client.pipeline(transaction=False)
    for packet in source.packets():
        if not len(packet):  # a paced replay's tick in a gap: its watermark goes on the stream
            pipe.xadd(key, {"watermark": str(source.watermark_us)}, maxlen=maxlen, approximate=True)
            pipe.execute()
            continue
        pipe.xadd(key, {"events": packet.tobytes(), "sensor": str(source.sensor)}, maxlen=maxlen, approximate=True)
        packets += 1
        events += len(packet)
        if packets % 64 == 0 or realtime:
            pipe.execute()
    if end_of_stream:
        pipe.xadd(key, {"eos": b"1"}, maxlen=maxlen, approximate=True)
    pipe.execute()
    return {"packets": packets, "events": events}
