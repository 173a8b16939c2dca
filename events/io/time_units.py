"""Time units of event files: parsing, inference from a known window length, and plausibility checks.

A file's timestamps are numbers in some unit; anonreid's events are in microseconds. The unit is
named by a power of ten from 1 ns to 1 s (``ns``, ``10ns``, ``100ns``, ``us``, ``10us``, ``100us``,
``ms``, ``10ms``, ``100ms``, ``s``; ``µs`` is ``us``), by an explicit scale with a unit (``2.5us``,
``0.5ms``), or by a bare number of seconds per tick (``1e-4`` = ``100us``). Event-ReId's chunk files,
for instance, count ticks of 100 us: a 33.3 ms chunk spans about 333 units.

When a file does not say and the caller did not either, the unit is inferred from what is known
about the recording, and a :class:`TimeUnitWarning` says so (the CLIs route warnings to the log on
stderr):

* chunk files of a known window length (:func:`infer_time_unit`): the coarsest power of ten under which
  no chunk is longer than the window (a chunk never is; real chunks of people walking fill most of it);
* a whole recording with labelled windows (:func:`nearest_time_unit`): the power of ten whose span
  is closest, on a log scale, to the labelled length;
* a column of float timestamps (:func:`float_column_time_unit`, e.g. HDF5 ``events/ts`` or an ``.npz``
  ``t`` column in seconds, as E2VID's tools write them): the finest power of ten under which every
  timestamp is a whole number of microseconds, the clock of event sensors (DAVIS346 and Prophesee
  Gen4 timestamp in 1 us ticks).

A unit that was given is checked the same way (:func:`check_chunk_spans`,
:func:`check_recording_span`): a span that cannot be right for it is an :class:`EventFormatError`
that names the fix (``--time-unit``, config ``events.time_unit``) and the unit the spans suggest.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterable

import numpy as np

from anonreid.events.types import EventFormatError
from anonreid.events.windowing import DEFAULT_WINDOW_US

__all__ = [
    "FLOAT_UNIT_SAMPLE",
    "TIME_UNITS",
    "TimeUnitWarning",
    "check_chunk_spans",
    "check_event_rate",
    "check_recording_span",
    "float_column_time_unit",
    "infer_time_unit",
    "nearest_time_unit",
    "time_scale_to_us",
    "unit_name",
    "warn_inferred",
]

#: multiplier from a file's time unit to microseconds, for every power of ten from 1 ns to 1 s
TIME_UNITS: dict[str, float] = {
    "ns": 1e-3, "10ns": 1e-2, "100ns": 1e-1, "us": 1.0, "10us": 10.0, "100us": 100.0,
    "ms": 1e3, "10ms": 1e4, "100ms": 1e5, "s": 1e6,
}
_BASE_UNITS = {"ns": 1e-3, "us": 1.0, "µs": 1.0, "μs": 1.0, "ms": 1e3, "s": 1e6}
_SPEC = re.compile(r"^(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)?\s*(?P<unit>ns|us|µs|μs|ms|s)?$")
FIX = "give the unit with --time-unit (config events.time_unit)"

# a chunk never spans more than its window; this much slack covers rounding of float timestamps
_CHUNK_SLACK = 1.1
# a unit whose chunks span more than this many windows, or less than this fraction of one, is wrong
_CHUNK_TOO_LONG, _CHUNK_TOO_SHORT = 1.5, 0.05
# a recording spans at least its labelled windows (the last one starts inside it) and not many times
# more: an inferred unit must give a span within (low, high) of theirs, a given one within (low, given)
_RECORDING_LOW, _RECORDING_HIGH, _RECORDING_HIGH_GIVEN = 0.8, 5.0, 20.0
#: no recording's mean event rate can exceed the fastest published event readout, 1.066 Gevent/s (Prophesee
#: Gen4, Finateu et al., "A 1280x720 ... 1.066GEPS readout ...", ISSCC 2020)
MAX_EVENT_RATE_HZ = 1.066e9
# a float timestamp this close to a whole microsecond (plus its dtype's rounding) is one: a tenth of a ns, so
# that a value 1 ns off (0.001 us) is not (at 1e-3, [1.0, 9.3e18] in us was inferred as ns)
_WHOLE_US_SLACK = 1e-4
#: how many leading float timestamps a reader gives :func:`float_column_time_unit` to infer their unit from
FLOAT_UNIT_SAMPLE = 100_000


class TimeUnitWarning(UserWarning):
    """The time unit of an event file was inferred (or assumed), not given."""


def time_scale_to_us(time_unit: str | float) -> float:
    """Multiplier that converts timestamps in ``time_unit`` to us.

    A string names a unit (see the module docstring: ``"100us"``, ``"ms"``, ``"2.5us"``, ``"1e-4"`` =
    seconds per tick); a number *is* the multiplier to us (``100.0`` for ticks of 100 us).
    """
    if isinstance(time_unit, str):
        text = time_unit.strip()
        match = _SPEC.match(text)
        if not text or match is None:
            raise ValueError(
                f"unknown time unit {time_unit!r}; use a power of ten from 1 ns to 1 s ({', '.join(TIME_UNITS)}), "
                "a scaled unit such as 2.5us, or seconds per tick such as 1e-4"
            )
        number, unit = match["num"], match["unit"]
        scale = (float(number) if number else 1.0) * (_BASE_UNITS[unit] if unit else 1e6)
    else:
        scale = float(time_unit)
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"time unit must be a positive duration, got {time_unit!r}")
    return scale


def unit_name(time_unit: str | float) -> str:
    """The canonical name of a unit: ``"100us"`` for a power of ten, else seconds (``"2.5e-06s"``)."""
    scale = time_scale_to_us(time_unit)
    for name, value in TIME_UNITS.items():
        if math.isclose(scale, value, rel_tol=1e-9):
            return name
    return f"{scale / 1e6:g}s"


def _positive(spans: Iterable[float]) -> np.ndarray:
    return np.asarray([s for s in spans if s > 0 and math.isfinite(s)], dtype=np.float64)


def infer_time_unit(spans: Iterable[float], window_us: float = DEFAULT_WINDOW_US) -> str:
    """The unit of chunk files whose raw time spans (last - first timestamp) are ``spans``: the coarsest
    power of ten under which no chunk (95th percentile) is longer than the window ``window_us``.
    Give the spans of several chunks; empty or zero spans are ignored. Raises ValueError when there
    is nothing to infer from."""
    values = _positive(spans)
    if not len(values):
        raise ValueError("cannot infer the time unit: no chunk with a positive time span")
    longest = float(np.percentile(values, 95))
    for name, scale in sorted(TIME_UNITS.items(), key=lambda kv: -kv[1]):
        if longest * scale <= window_us * _CHUNK_SLACK:
            return name
    raise ValueError(f"cannot infer the time unit: chunks span {longest:g} units, longer than a window even in ns")


def nearest_time_unit(span: float, expected_us: float) -> str:
    """The power of ten under which a raw time span ``span`` is closest (log scale) to ``expected_us``."""
    if not (span > 0 and math.isfinite(span)) or expected_us <= 0:
        raise ValueError(f"cannot infer the time unit from a span of {span:g} units")
    return min(TIME_UNITS, key=lambda name: abs(math.log(span * TIME_UNITS[name] / expected_us)))


def _ms(us: float) -> str:
    return f"{us / 1e3:.4g} ms"


def check_chunk_spans(spans: Iterable[float], time_unit: str | float, window_us: float, source: str) -> None:
    """Raise :class:`EventFormatError` when chunk files with raw spans ``spans`` cannot be in
    ``time_unit``: their longest (95th percentile) spans more than 1.5 windows, or their median less
    than 5% of one. The message names the fix and the unit the spans suggest."""
    values = _positive(spans)
    if not len(values):
        return
    scale = time_scale_to_us(time_unit)
    longest, median = float(np.percentile(values, 95)) * scale, float(np.median(values)) * scale
    if longest > _CHUNK_TOO_LONG * window_us:
        problem = f"chunks span up to {_ms(longest)}, longer than a {_ms(window_us)} window"
    elif median < _CHUNK_TOO_SHORT * window_us:
        problem = f"chunks span {_ms(median)} (median), a small fraction of a {_ms(window_us)} window"
    else:
        return
    raise EventFormatError(source, f"read in {unit_name(time_unit)}, {problem}: the time unit is wrong; "
                                   f"{FIX}{_suggest(lambda: infer_time_unit(values, window_us))}")


def check_recording_span(
    span: float, time_unit: str | float, expected_us: float, source: str, what: str, inferred: bool = False
) -> None:
    """Raise :class:`EventFormatError` when a recording of raw span ``span`` cannot be in ``time_unit``
    given that it covers ``expected_us`` (``what`` says how that is known, e.g. "its 105 labelled
    windows"): it must span at least 0.8 times that, and at most 20 times (5 for an ``inferred`` unit)."""
    if not (span > 0 and math.isfinite(span)):
        return
    us = span * time_scale_to_us(time_unit)
    high = _RECORDING_HIGH if inferred else _RECORDING_HIGH_GIVEN
    if _RECORDING_LOW * expected_us <= us <= high * expected_us:
        return
    raise EventFormatError(
        source, f"read in {unit_name(time_unit)}, the recording spans {_ms(us)}, but {what} cover {_ms(expected_us)}: "
                f"the time unit is wrong; {FIX}{_suggest(lambda: nearest_time_unit(span, expected_us))}")


def whole_microsecond_unit(values: np.ndarray) -> str | None:
    """The finest power of ten under which every finite value of the float array ``values`` is a whole
    number of microseconds (within the dtype's precision), or None when none is (or fewer than two
    distinct values)."""
    v = np.unique(np.asarray(values)[np.isfinite(values)]).astype(np.float64)
    if len(v) < 2:
        return None
    eps = float(np.finfo(values.dtype).eps) if values.dtype.kind == "f" else 0.0
    with np.errstate(all="ignore"):  # huge values overflow to inf, which is whole in no unit
        for name, scale in sorted(TIME_UNITS.items(), key=lambda kv: kv[1]):
            us = v * scale
            if np.all(np.abs(us - np.round(us)) <= _WHOLE_US_SLACK + 4 * eps * np.abs(us)):
                return name
    return None


def check_event_rate(count: int, span: float, time_unit: str | float, source: str, suggest: str | None = None) -> None:
    """Raise :class:`EventFormatError` when ``count`` events over a raw span ``span`` in ``time_unit``
    would arrive faster than any event sensor reads out (:data:`MAX_EVENT_RATE_HZ`)."""
    if count < 2 or not math.isfinite(span):
        return
    us = span * time_scale_to_us(time_unit)
    if us > 0 and (count - 1) / (us * 1e-6) <= MAX_EVENT_RATE_HZ:
        return
    rate = "all at one instant" if us <= 0 else f"{(count - 1) / (us * 1e-6):.3g} events/s"
    hint = f" (its timestamps suggest {suggest})" if suggest else ""
    raise EventFormatError(
        source, f"read in {unit_name(time_unit)}, {count} events span {_ms(us)}: {rate}, faster than any event sensor "
                f"reads out ({MAX_EVENT_RATE_HZ:.4g}/s): the time unit is wrong; {FIX}{hint}")


def float_column_time_unit(
    sample: np.ndarray, last: float, count: int, time_unit: str | float | None, source: str
) -> str | float:
    """The unit of a float time column of ``count`` values, the first ones ``sample`` and the last one
    ``last`` (the one helper of every reader whose format may hold float timestamps: HDF5, ``.npz``):
    ``time_unit`` when given, else inferred from ``sample`` as :func:`whole_microsecond_unit`, with a
    :class:`TimeUnitWarning`. Either way ``count`` events over the raw span ``last - sample[0]`` must be
    a possible event rate (:func:`check_event_rate`); a column that is whole microseconds in no unit
    cannot be inferred and is an :class:`EventFormatError`. Fewer than two distinct timestamps say
    nothing: us, with the warning. Call it from the reader's ``__init__`` (the warning points at its caller)."""
    span = float(last) - float(sample[0]) if len(sample) else 0.0  # Python floats: inf - inf is nan, no warning
    inferred = whole_microsecond_unit(sample)
    if time_unit is not None:
        check_event_rate(count, span, time_unit, source, inferred)
        return time_unit
    if inferred is None:
        if len(np.unique(sample[np.isfinite(sample)])) >= 2:
            raise EventFormatError(source, "float timestamps that are whole microseconds in no unit from ns to s: "
                                           f"cannot infer their unit; {FIX}")
        warn_inferred(source, "us", "nothing (fewer than two distinct float timestamps; read as us)", stacklevel=4)
        return "us"
    check_event_rate(count, span, inferred, source)
    warn_inferred(source, inferred, "its float timestamps (whole microseconds, the clock of event sensors, in that "
                                    "unit and in no finer one)", stacklevel=4)
    return inferred


def _suggest(infer: Callable[[], str]) -> str:
    try:
        return f" (its spans suggest {infer()})"
    except ValueError:
        return ""


def warn_inferred(source: str, unit: str, evidence: str, stacklevel: int = 3) -> None:
    """Say (as a :class:`TimeUnitWarning`) that ``source``'s time unit was inferred as ``unit``."""
    warnings.warn(
        f"{source}: time unit not given; inferred {unit} from {evidence}. If that is wrong, {FIX} "
        f"(e.g. --time-unit {unit})",
        TimeUnitWarning,
        stacklevel=stacklevel,
    )
