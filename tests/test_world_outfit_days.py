"""``world.outfit_days``: a world whose passes are filmed on several days, each pass in its day's outfit
(the same body, gait, hair and face), for a ReId that must not rely on clothing (issue #16)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from anonreid.events.world import WorldDataset
from anonreid.events.world.build import build_world
from anonreid.events.world.dataset import (
    pass_day,
    pass_plan,
    recorded_config,
    simulate_dataset,
    simulate_pass,
)
from anonreid.orchestration.config import WorldConfig

TINY = WorldConfig(identities=3, train_identities=2, resolution="96x72", pass_seconds=0.5)


def test_each_pass_draws_its_day_from_its_own_seed() -> None:
    cfg = WorldConfig(identities=40, train_identities=30, resolution="64x48", seed=2)
    one, four = build_world(cfg), build_world(cfg.model_copy(update={"outfit_days": 4}))
    plan = pass_plan(four)
    assert all(pass_day(one, pi, ci, rep) == 0 for _, pi, ci, rep in plan)
    days = [pass_day(four, pi, ci, rep) for _, pi, ci, rep in plan]
    assert days == [pass_day(four, pi, ci, rep) for _, pi, ci, rep in plan]  # the same every time
    counts = Counter(days)
    assert set(counts) == {0, 1, 2, 3}
    assert all(abs(n / len(plan) - 0.25) < 4 * np.sqrt(0.25 * 0.75 / len(plan)) for n in counts.values())
    # a person is filmed in more than one outfit, so a ReId trained on the world cannot match by clothing alone
    per_person = {pi: {pass_day(four, pi, ci, 0) for ci in range(4)} for pi in range(40)}
    assert sum(len(d) > 1 for d in per_person.values()) > 30


def test_outfit_days_is_recorded_only_when_used() -> None:
    assert "outfit_days" not in recorded_config(TINY)  # worlds simulated before it keep their fingerprint
    assert recorded_config(TINY.model_copy(update={"outfit_days": 3}))["outfit_days"] == 3


def test_a_pass_on_another_day_wears_that_days_outfit(tmp_path) -> None:
    cfg = TINY.model_copy(update={"outfit_days": 6})
    world, plain = build_world(cfg), build_world(TINY)
    root = simulate_dataset(tmp_path / "w", cfg, progress=False)
    meta = json.loads((root / "world.json").read_text())
    assert meta["config"]["outfit_days"] == 6
    ds = WorldDataset(root)
    plan = {pid: (pi, ci, rep) for pid, pi, ci, rep in pass_plan(world)}
    seen = set()
    for rec in meta["passes"]:
        pi, ci, rep = plan[rec["pass_id"]]
        assert rec["day"] == pass_day(world, pi, ci, rep)
        stored = ds.load_pass(rec["pass_id"])
        before = simulate_pass(plain, rec["pass_id"], pi, ci, rep)  # the same pass, filmed on day 0
        visible = ~np.isnan(stored.boxes[:, 0])
        if not visible.any():
            continue
        seen.add(rec["day"] > 0)
        if rec["day"] == 0:
            assert np.array_equal(stored.frames, before.frames) and np.array_equal(stored.events["t"], before.events["t"])
        else:  # another outfit: the person looks different, the background does not
            diff = np.abs(stored.frames.astype(np.int16) - before.frames.astype(np.int16))
            assert diff.max() > 20
            assert (diff > 0).mean() < 0.5
    assert seen == {False, True}, "the tiny world should hold visible passes of both kinds"


@pytest.mark.parametrize("bad", [0, 65])
def test_outfit_days_out_of_range_is_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="outfit_days"):
        WorldConfig(**(TINY.model_dump() | {"outfit_days": bad}))
