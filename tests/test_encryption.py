import numpy as np
import pytest

from anonreid.events import SensorSize, make_events
from anonreid.events.encryption import chaotic_discard, chaotic_scramble, logistic_keystream


def _events(n=20_000, seed=0, sensor=SensorSize(64, 48)):
    rng = np.random.default_rng(seed)
    return make_events(np.sort(rng.integers(0, 100_000, n)), rng.integers(0, sensor.width, n),
                       rng.integers(0, sensor.height, n), rng.choice([-1, 1], n), sensor)


def test_keystream_is_chaotic_and_keyed():
    a, b = logistic_keystream(10_000, 0.3), logistic_keystream(10_000, 0.3 + 1e-12)
    assert np.array_equal(a, logistic_keystream(10_000, 0.3))
    assert np.mean(np.abs(a - b) > 0.1) > 0.5  # sensitive dependence on the key
    assert a.min() > 0 and a.max() < 1
    with pytest.raises(ValueError, match="key"):
        logistic_keystream(3, 1.5)


def test_scramble_moves_and_flips_about_75_percent():
    sensor = SensorSize(64, 48)
    ev = _events(sensor=sensor)
    out = chaotic_scramble(ev, sensor)
    assert np.array_equal(out["t"], ev["t"]) and ev is not out
    moved = (out["x"] != ev["x"]) | (out["y"] != ev["y"])
    assert 0.70 < moved.mean() < 0.80
    flipped = out["p"] != ev["p"]
    assert 0.30 < flipped.mean() < 0.45  # half of the 75% selected
    # a fixed permutation: the same pixel always goes to the same pixel
    src = ev["y"].astype(int) * sensor.width + ev["x"]
    dst = out["y"].astype(int) * sensor.width + out["x"]
    for pixel in np.unique(src[moved])[:50]:
        assert len(np.unique(dst[moved & (src == pixel)])) == 1
    assert not np.array_equal(chaotic_scramble(ev, sensor, key=0.5)["x"], out["x"])


def test_discard_keeps_about_25_percent_in_order():
    ev = _events()
    out = chaotic_discard(ev)
    assert 0.22 < len(out) / len(ev) < 0.28
    assert np.all(np.diff(out["t"]) >= 0)
    assert len(chaotic_discard(ev[:0])) == 0
