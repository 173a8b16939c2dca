"""Synthetic sightings for tests and benchmarks: identity prototypes plus noise, walking camera routes.

Each identity has a random unit prototype; a sighting's embedding is the prototype plus Gaussian noise
of total norm about ``noise``, re-normalised, so two sightings of one person have cosine similarity near
``1 / (1 + noise**2)`` and two different people near 0 (± 1/sqrt(dim)). ``walk`` sends each identity
through a sequence of cameras with transit gaps, which is what the association's constraints check.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from anonreid.gallery.types import Box, Sighting


def unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def prototypes(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random unit vectors (n, dim) float32."""
    return unit(rng.standard_normal((n, dim)))


def noisy(proto: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Unit embedding(s) near ``proto``: cosine to it about 1 / sqrt(1 + noise**2)."""
    proto = np.asarray(proto, dtype=np.float32)
    eps = rng.standard_normal(proto.shape).astype(np.float32) * (noise / np.sqrt(proto.shape[-1]))
    return unit(proto + eps)


def sighting(sighting_id: str, camera_id: str, tracklet_id: str, start_us: int, end_us: int,
             embedding: np.ndarray, quality: float = 0.9) -> Sighting:
    return Sighting(sighting_id, camera_id, tracklet_id, int(start_us), int(end_us),
                    np.asarray(embedding, np.float32), Box(10, 20, 40, 120, 5, 3000.0, 15.0, 0.0), quality,
                    "synthetic")


def walk(protos: np.ndarray, route: Sequence[str], rng: np.random.Generator, *, noise: float = 0.5,
         start_us: int = 0, dwell_us: int = 3_000_000, transit_us: int = 10_000_000,
         stagger_us: int = 20_000_000, prefix: str = "s") -> Iterator[tuple[int, Sighting]]:
    """Every identity walks ``route`` (one camera after another): yields (true identity, sighting),
    sorted by start time. Identity i starts at ``start_us + i * stagger_us``; each camera visit lasts
    ``dwell_us`` and is followed by ``transit_us`` of walking."""
    out = []
    for i, proto in enumerate(protos):
        t = start_us + i * stagger_us
        for c, camera in enumerate(route):
            sid = f"{prefix}-{i}-{c}"
            out.append((t, i, sighting(sid, camera, f"{camera}-t{i}", t, t + dwell_us, noisy(proto, noise, rng))))
            t += dwell_us + transit_us
    out.sort(key=lambda x: (x[0], x[1]))
    for _, i, s in out:
        yield i, s
