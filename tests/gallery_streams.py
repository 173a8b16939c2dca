"""A recorded stream of sightings as cameras publish it, cut into the batches a publish stream delivers,
and the comparison of two runs' acks (tests of batched association and of snapshot restarts)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from anonreid.gallery.synthetic import noisy, prototypes, sighting, unit
from anonreid.gallery.types import Ack, Sighting

S = 1_000_000
DIM = 32
CAMS = ("cam1", "cam2", "cam3", "cam4")
LAG_US = {"cam1": 0, "cam2": 3 * S, "cam3": 6 * S, "cam4": 9 * S}  # cameras publish at different delays


def recorded_stream(seed: int = 0, people: int = 60, prefix: str = "p") -> list[Sighting]:
    """Sightings as cameras publish them: each person walks 2-4 cameras, each visit a tracklet updated
    three times; cameras lag each other, so publish order is not time order (identity splits); every
    fourth person has a look-alike (cosine ~0.9); ten sightings are published twice (retries)."""
    rng = np.random.default_rng(seed)
    protos = prototypes(people, DIM, rng)
    for i in range(1, people, 4):
        protos[i] = unit(protos[i - 1] + 0.4 * protos[i])
    out = []
    for i in range(people):
        t = int(rng.integers(0, 90)) * S
        route = rng.permutation(CAMS)[: int(rng.integers(2, 5))]
        for c, cam in enumerate(route):
            dwell = int(rng.integers(2, 7)) * S
            for u in range(3):
                end = t + dwell * (u + 1) // 3
                out.append((end + LAG_US[cam], sighting(f"{prefix}{i}-c{c}-u{u}", cam, f"{cam}-t{i}-{c}", t, end,
                                                        noisy(protos[i], 0.5, rng))))
            t += dwell + int(rng.integers(1, 15)) * S
    out.sort(key=lambda x: (x[0], x[1].sighting_id))
    stream = [s for _, s in out]
    for j in sorted(rng.choice(len(stream), 10, replace=False).tolist(), reverse=True):
        stream.insert(j + 3, stream[j])
    return stream


def batches(stream: list[Sighting], seed: int = 1, most: int = 64) -> Iterator[list[Sighting]]:
    """The stream cut into batches of 1..most, as a publish stream's reads deliver them."""
    rng = np.random.default_rng(seed)
    i = 0
    while i < len(stream):
        n = int(rng.integers(1, most + 1))
        yield stream[i : i + n]
        i += n


def decision_of(a: Ack) -> tuple:
    """Everything an ack says but the similarities (see :func:`same_decisions`)."""
    d = a.decision
    if d is None:
        return (a.sighting_id, a.identity_id, a.duplicate, a.new_identity, None)
    return (a.sighting_id, a.identity_id, a.duplicate, a.new_identity, d.rule, d.splits,
            tuple((c.identity_id, c.accepted, c.reason) for c in d.candidates))


def same_decisions(got: list[Ack], want: list[Ack]) -> None:
    """Identical acks and decisions; similarities to float32 rounding (a batched and a single search
    may sum the same products in another order)."""
    assert [decision_of(a) for a in got] == [decision_of(a) for a in want]
    sims = [[a.similarity, *(c.similarity for c in (a.decision.candidates if a.decision else ()))] for a in got]
    ref = [[a.similarity, *(c.similarity for c in (a.decision.candidates if a.decision else ()))] for a in want]
    assert np.allclose(np.concatenate(sims), np.concatenate(ref), atol=1e-5, rtol=0)
