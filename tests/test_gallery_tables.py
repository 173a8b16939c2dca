"""The gallery's in-memory tables alone, without Redis or FAISS: the ways rows come and go keep them consistent."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from anonreid.gallery.errors import NotFound
from anonreid.gallery.tables import IdentityTables
from anonreid.gallery.types import Split, StoredSighting

CAMERAS = ("cam1", "cam2", "cam3")
S = 1_000_000


def rows(n: int = 60, seed: int = 0) -> list[StoredSighting]:
    """Sightings of a few tracklets per camera, each tracklet one identity, several tracklets per identity."""
    rng = np.random.default_rng(seed)
    out = []
    for fid in range(1, n + 1):
        camera = CAMERAS[int(rng.integers(len(CAMERAS)))]
        tracklet = int(rng.integers(6))
        identity = f"id-{(CAMERAS.index(camera) * 6 + tracklet) % 5:06d}"
        start = int(rng.integers(0, 120)) * S
        out.append(StoredSighting(f"s{fid}", fid, camera, f"t{tracklet}", start, start + S, identity, 0.9, fid))
    return out


def contents(t: IdentityTables) -> dict[str, Any]:
    return {
        "by_id": dict(sorted(t._sightings.items())),
        "by_fid": dict(sorted(t._by_fid.items())),
        "tracks": {i: ([r.sighting_id for r in tr.sightings], tr.cameras) for i, tr in sorted(t._tracks.items())},
        "tracklets": dict(sorted(t._tracklets.items())),
        "ends": t._ends,
    }


def loaded(rs: list[StoredSighting]) -> IdentityTables:
    t = IdentityTables(CAMERAS)
    t._remember_all(rs)
    return t


def test_one_by_one_equals_a_load_and_a_relabel_rolls_back_exactly():
    rs = rows()
    one = IdentityTables(CAMERAS)
    for r in reversed(rs):  # out of time order, as cameras publish
        one._remember(r)
    assert contents(one) == contents(loaded(rs)) and len(one) == len(rs)
    assert one._latest_us == max(r.end_us for r in rs)
    before = contents(one)
    moved = [r for r in rs if (r.camera_id, r.tracklet_id) == (rs[0].camera_id, rs[0].tracklet_id)]
    one._relabel([r.sighting_id for r in moved], "id-999999")  # a split
    assert {r.sighting_id for r in one._track("id-999999").sightings} == {r.sighting_id for r in moved}
    assert one._tracklets[(rs[0].camera_id, rs[0].tracklet_id)] == "id-999999"
    assert one.sighting(rs[0].sighting_id).identity_id == "id-999999"
    one._relabel([r.sighting_id for r in moved], rs[0].identity_id)  # its rollback
    assert contents(one) == before and "id-999999" not in one._tracks
    with pytest.raises(NotFound) as err:
        one._track("id-999999")
    assert err.value.reason == "unknown_identity"


def test_unremember_leaves_what_loading_the_rest_builds():
    rs = rows(seed=1)
    t = loaded(rs)
    gone = rs[::3]
    t._unremember(gone)
    rest = [r for r in rs if r not in gone]
    assert contents(t) == contents(loaded(rest))
    with pytest.raises(NotFound) as err:
        t.sighting(gone[0].sighting_id)
    assert err.value.reason == "unknown_sighting"


def test_stored_moves_name_the_rows_a_split_relabels_in_redis():
    rs = rows(seed=2)
    t = loaded(rs)
    old = rs[0].identity_id
    moved = [r.sighting_id for r in rs if (r.camera_id, r.tracklet_id) == (rs[0].camera_id, rs[0].tracklet_id)]
    assert len(moved) > 1
    split = Split(old, rs[0].camera_id, rs[0].tracklet_id, "id-999999", tuple(moved))
    t._relabel(moved, split.new_identity_id)
    staged = {moved[0]: None}  # a row of the batch itself is written as it is now
    assert t._stored_moves([split], staged) == [(old, t.sighting(sid)) for sid in moved[1:]]
