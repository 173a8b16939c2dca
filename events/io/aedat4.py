"""AEDAT4 (iniVation DV) event files through the ``aedat`` package (neuromorphicsystems/aedat).

The decoder reads packet by packet (streaming). The first event stream's ``sizeX``/``sizeY`` give the
sensor. ``aedat`` reports bad input as RuntimeError/OSError or, for some corrupt flatbuffers, as a Rust
panic (``pyo3_runtime.PanicException``, a BaseException); all become EventFormatError naming the file
and the byte offset of the packet, which this module tracks from the packet framing
(``u32 stream id, u32 size, payload``) after the ``#!AER-DAT4.0\\r\\n`` magic and the IO header.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from anonreid.events.io.base import EventReader
from anonreid.events.types import EventFormatError, SensorSize, make_events

__all__ = ["MAGIC", "Aedat4Reader"]

MAGIC = b"#!AER-DAT4.0\r\n"


def _is_decoder_failure(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError | OSError | ValueError | KeyError | TypeError) or (
        type(exc).__name__ == "PanicException"
    )


class Aedat4Reader(EventReader):
    """Streaming reader of the event stream(s) of an AEDAT4 file (packets of one stream id)."""

    format_name = "aedat4"

    def __init__(self, path: str | Path, sensor: SensorSize | None = None, chunk_events: int = 1_000_000) -> None:
        super().__init__(path, sensor, chunk_events)
        self._packet_offset = 0
        self._current_packet = 0
        self.compression = 0
        decoder = self._decoder()
        streams = self._call(decoder.id_to_stream, "header")
        events_ids = sorted(i for i, s in streams.items() if s.get("type") == "events")
        if not events_ids:
            raise self.error("no event stream in the file", "header")
        self.stream_id = events_ids[0]
        info = streams[self.stream_id]
        if self.sensor is None and info.get("width") and info.get("height"):
            self.sensor = SensorSize(int(info["width"]), int(info["height"]))

    def _call(self, fn: Any, where: str) -> Any:
        try:
            return fn()
        except BaseException as exc:
            if _is_decoder_failure(exc):
                raise self.error(f"corrupt AEDAT4 data ({exc})", where) from None
            raise

    def _decoder(self) -> Any:
        import aedat

        size = self.path.stat().st_size
        with open(self.path, "rb") as f:
            head = f.read(len(MAGIC) + 4)
            if not head.startswith(MAGIC):
                raise self.error("not an AEDAT4 file (wrong magic number)", "byte 0")
            if len(head) < len(MAGIC) + 4:
                raise self.error("truncated IO header", f"byte {len(MAGIC)}")
            (header_len,) = struct.unpack("<I", head[len(MAGIC) :])
            if len(MAGIC) + 4 + header_len > size:
                raise self.error(f"IO header of {header_len} bytes runs past the end of the file", f"byte {len(MAGIC)}")
            self.compression = _verify_ioheader(f.read(header_len), self.error)
        self._packet_offset = len(MAGIC) + 4 + header_len
        return self._call(lambda: aedat.Decoder(str(self.path)), "header")

    def locate(self, event_index: int) -> str:
        return f"packet at byte {self._current_packet}, event {event_index}"

    def _check_packet(self, framing: Any, offset: int, size: int) -> bool:
        """Verify the packet at ``offset`` before the decoder reads it (False at the end of the file).

        The decoder allocates the declared packet size and follows the flatbuffer's offsets, so a
        corrupt size or table could abort the process: sizes are checked against the file, and
        uncompressed event packets get a flatbuffer bounds check."""
        if offset == size:
            return False
        framing.seek(offset)
        head = framing.read(8)
        if len(head) < 8:
            raise self.error("truncated packet header", f"byte {offset}")
        stream_id, length = struct.unpack("<II", head)
        if offset + 8 + length > size:
            raise self.error(f"packet of {length} bytes runs past the end of the file", f"byte {offset}")
        if self.compression == 0 and stream_id == self.stream_id:
            _verify_event_packet(framing.read(length), lambda m: self.error(m, f"packet at byte {offset}"))
        return True

    def _chunks(self) -> Iterator[np.ndarray]:
        decoder = self._decoder()
        offset = self._packet_offset
        size = self.path.stat().st_size
        seen = 0
        with open(self.path, "rb") as framing:
            while self._check_packet(framing, offset, size):
                self._current_packet = offset
                packet = self._call(lambda: next(decoder, None), f"packet at byte {offset}")
                if packet is None:
                    return
                framing.seek(offset + 4)
                (length,) = struct.unpack("<I", framing.read(4))
                offset += 8 + length
                if packet.get("stream_id") != self.stream_id or "events" not in packet:
                    continue
                ev = packet["events"]
                try:
                    chunk = make_events(ev["t"].astype(np.int64), ev["x"], ev["y"],
                                        np.where(ev["on"], 1, -1), source=self.source, index_offset=seen)
                except EventFormatError as exc:
                    raise self.relocate(exc) from None
                seen += len(chunk)
                yield chunk


def _table(buf: bytes, root: int, fail: Any) -> tuple[int, list[int]]:
    """Bounds-checked flatbuffer table at ``root``: ``(table size, field offsets)``."""
    if root < 0 or root % 4 or root + 4 > len(buf):
        raise fail(f"flatbuffer root offset {root} outside the {len(buf)}-byte buffer")
    (soffset,) = struct.unpack_from("<i", buf, root)
    vt = root - soffset
    if vt < 0 or vt % 2 or vt + 4 > len(buf):
        raise fail(f"flatbuffer vtable offset {vt} outside the buffer")
    vt_size, table_size = struct.unpack_from("<HH", buf, vt)
    if vt_size < 4 or vt_size % 2 or vt + vt_size > len(buf) or table_size < 4 or root + table_size > len(buf):
        raise fail("flatbuffer vtable or table runs past the buffer")
    fields = list(struct.unpack_from(f"<{(vt_size - 4) // 2}H", buf, vt + 4))
    return table_size, fields


def _field(buf: bytes, root: int, table_size: int, fields: list[int], index: int, width: int, fail: Any) -> int | None:
    """Absolute position of field ``index`` (``width`` bytes), None when absent."""
    if index >= len(fields) or fields[index] == 0:
        return None
    if fields[index] + width > table_size:
        raise fail(f"flatbuffer field {index} runs past its table")
    return root + fields[index]


def _verify_ioheader(buf: bytes, error: Any) -> int:
    """Bounds-check the IO header flatbuffer (compression, file_data_position, description); return the
    compression code."""

    def fail(message: str) -> EventFormatError:
        return error(f"bad IO header: {message}", f"byte {len(MAGIC) + 4}")

    if len(buf) < 8:
        raise fail("shorter than a flatbuffer")
    (root,) = struct.unpack_from("<I", buf, 0)
    table_size, fields = _table(buf, root, fail)
    compression = 0
    pos = _field(buf, root, table_size, fields, 0, 4, fail)
    if pos is not None:
        (compression,) = struct.unpack_from("<i", buf, pos)
        if not 0 <= compression <= 4:
            raise fail(f"unknown compression {compression}")
    _field(buf, root, table_size, fields, 1, 8, fail)
    pos = _field(buf, root, table_size, fields, 2, 4, fail)
    if pos is None:
        raise fail("no description")
    start = pos + struct.unpack_from("<I", buf, pos)[0]
    if start + 4 > len(buf):
        raise fail("description offset outside the header")
    (n,) = struct.unpack_from("<I", buf, start)
    if start + 4 + n > len(buf):
        raise fail("description runs past the header")
    try:
        buf[start + 4 : start + 4 + n].decode("utf-8")
    except UnicodeDecodeError:
        raise fail("description is not UTF-8") from None
    return compression


def _verify_event_packet(buf: bytes, fail: Any) -> None:
    """Bounds-check a size-prefixed ``EVTS`` EventPacket flatbuffer (elements: 16-byte Event structs)."""
    if len(buf) < 12 or buf[8:12] != b"EVTS":
        raise fail("not a size-prefixed EVTS event packet")
    (prefix,) = struct.unpack_from("<I", buf, 0)
    if prefix + 4 > len(buf):
        raise fail("flatbuffer size prefix larger than the packet")
    root = 4 + struct.unpack_from("<I", buf, 4)[0]
    table_size, fields = _table(buf, root, fail)
    pos = _field(buf, root, table_size, fields, 0, 4, fail)
    if pos is None:
        return
    vec = pos + struct.unpack_from("<I", buf, pos)[0]
    if vec + 4 > len(buf):
        raise fail("event vector offset outside the packet")
    (n,) = struct.unpack_from("<I", buf, vec)
    if vec + 4 + 16 * n > len(buf):
        raise fail(f"event vector of {n} events runs past the packet")
