"""Event encryption baselines of Du et al., "Event Encryption for Neuromorphic Vision Sensors:
Framework, Algorithm, and Evaluation" (Sensors 2021), as used in Table 3 of the anonymization paper.

Both baselines are driven by a logistic-map keystream (the chaotic map of Du et al.):

    x_{n+1} = r * x_n * (1 - x_n),   r = 3.99 (fully chaotic regime),   x_0 = the secret key in (0, 1)

after discarding the first 1000 iterates (transient), mapped through u = (2/pi) asin(sqrt(x)) (the
map's arcsine invariant density becomes uniform). The keystream decides, per event, whether the
event is *selected* (x_n < fraction, so ``fraction`` = 75% of the events on average):

- :func:`chaotic_scramble`: every selected event is moved to a key-dependent pixel (a permutation of the
  sensor's pixels obtained by arg-sorting a logistic sequence of length W*H) and its polarity is
  flipped when a second keystream (key shifted by the golden ratio) is below 0.5. Unselected events pass unchanged.
- :func:`chaotic_discard`: every selected event is dropped.

The keys used by the evaluation are fixed and documented in its results (``key`` argument); the
functions are pure, deterministic, never mutate their input and return valid event arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anonreid.events.types import SensorSize, validate_events

LOGISTIC_R = 3.99
TRANSIENT = 1000


def logistic_keystream(n: int, key: float, r: float = LOGISTIC_R) -> np.ndarray:
    """``n`` iterates of the logistic map from ``key`` (after the transient), made uniform on (0, 1)."""
    if not 0.0 < key < 1.0:
        raise ValueError(f"the chaotic key must lie in (0, 1), got {key}")
    x = key
    for _ in range(TRANSIENT):
        x = r * x * (1.0 - x)
    out = np.empty(n, dtype=np.float64)
    # The recurrence is inherently sequential; a python loop over millions of events is slow, so
    # iterate in blocks of independent sub-streams seeded from the main one.
    block = 4096
    n_streams = max(1, -(-n // block))
    seeds = np.empty(n_streams)
    for i in range(n_streams):
        x = r * x * (1.0 - x)
        seeds[i] = x
    state = seeds.copy()
    cols = np.empty((block, n_streams))
    for j in range(block):
        state = r * state * (1.0 - state)
        cols[j] = state
    out[:] = cols.T.reshape(-1)[:n]
    # The logistic map's invariant density is the arcsine law; this change of variable makes the
    # keystream uniform on (0, 1), so "x < fraction" selects exactly ``fraction`` of the events.
    return (2.0 / np.pi) * np.arcsin(np.sqrt(out))


def _subkey(key: float) -> float:
    """A second key derived from ``key`` (golden-ratio shift, kept inside (0, 1))."""
    return float(np.clip((key + 0.6180339887) % 1.0, 1e-6, 1 - 1e-6))


def _pixel_permutation(sensor: SensorSize, key: float) -> np.ndarray:
    return np.argsort(logistic_keystream(sensor.width * sensor.height, key), kind="stable")


@dataclass(frozen=True)
class ChaoticScramble:
    sensor: SensorSize
    key: float = 0.3141592653
    fraction: float = 0.75

    def __call__(self, events: np.ndarray) -> np.ndarray:
        return chaotic_scramble(events, self.sensor, self.key, self.fraction)


@dataclass(frozen=True)
class ChaoticDiscard:
    key: float = 0.2718281828
    fraction: float = 0.75

    def __call__(self, events: np.ndarray) -> np.ndarray:
        return chaotic_discard(events, self.key, self.fraction)


def chaotic_scramble(
    events: np.ndarray, sensor: SensorSize, key: float = 0.3141592653, fraction: float = 0.75
) -> np.ndarray:
    """Move ``fraction`` of the events to key-permuted pixels and flip polarities by the keystream."""
    selected = logistic_keystream(len(events), key) < fraction
    # consecutive iterates are correlated (u_{n+1} = tent(u_n)), so flips use a second keystream
    flip = selected & (logistic_keystream(len(events), _subkey(key)) < 0.5)
    perm = _pixel_permutation(sensor, key)
    out = events.copy()
    flat = events["y"][selected].astype(np.int64) * sensor.width + events["x"][selected]
    target = perm[flat]
    out["x"][selected] = (target % sensor.width).astype(np.uint16)
    out["y"][selected] = (target // sensor.width).astype(np.uint16)
    out["p"][flip] = -out["p"][flip]
    return validate_events(out, sensor, source="chaotic_scramble")


def chaotic_discard(events: np.ndarray, key: float = 0.2718281828, fraction: float = 0.75) -> np.ndarray:
    """Drop ``fraction`` of the events, chosen by the keystream."""
    keep = logistic_keystream(len(events), key) >= fraction
    return events[keep].copy()
