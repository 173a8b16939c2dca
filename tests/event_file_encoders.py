"""Minimal spec-written encoders for test files of formats whose libraries have no (correct) writer.

* EVT 3.0: docs.prophesee.ai/stable/data/encoding_formats/evt3.html — 16-bit little-endian words, the
  4 MSB the type: EVT_ADDR_Y 0x0 (y in bits 10..0), EVT_ADDR_X 0x2 (polarity bit 11, x in 10..0),
  VECT_BASE_X 0x3 (polarity bit 11, x), VECT_12 0x4 / VECT_8 0x5 (valid mask, base x advances by
  12 / 8), EVT_TIME_LOW 0x6 and EVT_TIME_HIGH 0x8 (12 bits each of a 24-bit us time).
  (expelliarmus' own EVT3 writer/reader do not round-trip, so it cannot produce the fixture.)
* AEDAT4: the file layout read by neuromorphicsystems/aedat (src/base.rs) and its flatbuffers schemas
  flatbuffers/ioheader.fbs and events.fbs — magic ``#!AER-DAT4.0\\r\\n``, u32 length + IOHeader table
  (compression, file_data_position, description XML), then packets ``u32 stream id, u32 size,
  size-prefixed EventPacket`` with file identifier ``EVTS`` and a vector of 16-byte Event structs
  (t int64, x int16, y int16, on bool). aedat has no writer.
"""

from __future__ import annotations

import struct

import numpy as np


def encode_evt3(events: np.ndarray, header: bytes = b"% evt 3.0\n% geometry 640x480\n% end\n") -> bytes:
    """EVT 3.0 bytes of ``events`` (sorted by t, then y, p, x for vectorisation of runs)."""
    words: list[int] = []
    cur_th = cur_tl = cur_y = None
    i = 0
    n = len(events)
    while i < n:
        t, y, p = int(events["t"][i]), int(events["y"][i]), int(events["p"][i] > 0)
        if cur_th != (t >> 12):
            cur_th = t >> 12
            words.append(0x8000 | (cur_th & 0xFFF))
            cur_tl = None
        if cur_tl != (t & 0xFFF):
            cur_tl = t & 0xFFF
            words.append(0x6000 | cur_tl)
        if cur_y != y:
            cur_y = y
            words.append(y & 0x7FF)
        # run of events at the same (t, y, p): vectorise when several x fall within 12 of the first
        j = i
        while j < n and int(events["t"][j]) == t and int(events["y"][j]) == y and int(events["p"][j] > 0) == p:
            j += 1
        xs = [int(v) for v in events["x"][i:j]]
        if len(xs) >= 2 and xs[-1] - xs[0] < 20 and len(set(xs)) == len(xs) and xs == sorted(xs):
            base = xs[0]
            words.append(0x3000 | (p << 11) | base)
            while xs:
                size = 12 if xs[-1] - base >= 8 else 8
                mask = 0
                for x in [v for v in xs if v < base + size]:
                    mask |= 1 << (x - base)
                words.append((0x4000 if size == 12 else 0x5000) | mask)
                xs = [v for v in xs if v >= base + size]
                base += size
        else:
            for x in xs:
                words.append(0x2000 | (p << 11) | x)
        i = j
    return header + np.asarray(words, dtype="<u2").tobytes()


def _ioheader(description: str) -> bytes:
    text = description.encode() + b"\0"
    buf = bytearray()
    buf += struct.pack("<I", 16)  # root table at 16
    buf += struct.pack("<HHHHH", 10, 20, 4, 8, 16)  # vtable at 4: 3 fields
    buf += b"\0\0"  # pad to 16
    buf += struct.pack("<i", 12)  # table at 16: vtable is 12 bytes before
    buf += struct.pack("<i", 0)  # compression None
    buf += struct.pack("<q", -1)  # file_data_position: unknown, read to the end
    buf += struct.pack("<I", 36 - 32)  # description string at 36
    buf += struct.pack("<I", len(text) - 1) + text
    while len(buf) % 4:
        buf += b"\0"
    return bytes(buf)


def _event_packet(events: np.ndarray) -> bytes:
    body = bytearray()
    body += struct.pack("<I", 20 - 4)  # root offset (relative to position 4) -> table at 20
    body += b"EVTS"
    body += struct.pack("<HHH", 6, 8, 4) + b"\0\0"  # vtable at 12, pad to 20
    body += struct.pack("<i", 8)  # table at 20, vtable 8 bytes before
    body += struct.pack("<I", 28 - 24)  # elements vector at 28 (elements 8-aligned at 32)
    body += struct.pack("<I", len(events))
    for e in events:
        body += struct.pack("<qhh?3x", int(e["t"]), int(e["x"]), int(e["y"]), bool(e["p"] > 0))
    # `body` starts at position 4 of the size-prefixed buffer: prefix its size
    return struct.pack("<I", len(body)) + bytes(body)


def encode_aedat4(events: np.ndarray, width: int, height: int, packet_events: int = 100, stream_id: int = 0) -> bytes:
    """AEDAT4 bytes with one event stream, ``packet_events`` events per packet."""
    description = (
        '<dv version="2.0"><node name="outInfo" path="/mainloop/Recorder/outInfo/">'
        f'<node name="{stream_id}" path="/mainloop/Recorder/outInfo/{stream_id}/">'
        '<attr key="compression" type="string">NONE</attr>'
        '<attr key="typeIdentifier" type="string">EVTS</attr>'
        f'<node name="info" path="/mainloop/Recorder/outInfo/{stream_id}/info/">'
        f'<attr key="sizeX" type="int">{width}</attr><attr key="sizeY" type="int">{height}</attr>'
        "</node></node></node></dv>"
    )
    header = _ioheader(description)
    out = bytearray(b"#!AER-DAT4.0\r\n" + struct.pack("<I", len(header)) + header)
    for start in range(0, len(events), packet_events):
        packet = _event_packet(events[start : start + packet_events])
        out += struct.pack("<II", stream_id, len(packet)) + packet
    return bytes(out)
