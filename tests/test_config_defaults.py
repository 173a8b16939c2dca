"""Numbers a user can change are keys of the config tree, and a shared default is written once (issue #20
item 3): the demo's widening of the world's walks into camera links, and the default window length."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import REPO

from anonreid.events.windowing import DEFAULT_WINDOW_US
from anonreid.orchestration.config import Config, load_config

SOURCE_FOLDERS = ("events", "models", "nodes", "gallery", "proto", "orchestration")


def test_the_default_window_length_is_written_once() -> None:
    """Every window default (config sections, readers, windowers, the simulator's slot) names the constant."""
    literal = re.compile(r"\b33_?333\b")
    found = [
        f"{path.relative_to(REPO)}:{n}"
        for folder in SOURCE_FOLDERS
        for path in sorted((REPO / folder).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if literal.search(line)
    ]
    assert found == ["orchestration/infra/timebase.py:11"]
    assert Config().events.window_us == Config().world.window_us == DEFAULT_WINDOW_US == 33_333


def _links(cfg: Config) -> dict[tuple[str, str], tuple[float, float]]:
    from anonreid.orchestration.demo import world_gallery_config

    return {(link.src, link.dst): (link.min_transit_s, link.max_transit_s)
            for link in world_gallery_config(cfg).camera_links}


def test_the_demo_widens_the_worlds_walks_by_config_keys(tmp_path: Path) -> None:
    """The camera links the demo derives from the world: its walks widened by demo.link_slack_min_s /
    link_slack_max_s (defaults 1 s and 2 s, as before), set from YAML or --set."""
    from anonreid.events.world import LiveWorld

    default = Config()
    walks = {(e.src, e.dst): (e.min_transit_s, e.max_transit_s) for e in LiveWorld(default.world).camera_graph()
             if e.src in default.demo.cameras and e.dst in default.demo.cameras}
    assert walks
    assert _links(default) == {k: (max(0.0, lo - 1.0), hi + 2.0) for k, (lo, hi) in walks.items()}

    path = tmp_path / "demo.yaml"
    path.write_text("demo:\n  link_slack_min_s: 0.0\n")
    cfg = load_config(path, ["demo.link_slack_max_s=5"], Config)
    assert _links(cfg) == {k: (lo, hi + 5.0) for k, (lo, hi) in walks.items()}


def test_overriding_one_key_of_a_nested_section_keeps_the_others_defaults() -> None:
    """`--set attacker.face.steps=N` kept the step count and reset the face crops to the appearance net's
    64 x 32 (a defender face net was trained on them, 34th session): every nested section's defaults hold
    whichever of its keys is overridden."""
    from functools import reduce

    from anonreid.models.config import load_train_config

    base = load_train_config("cpu")
    for key, value in (("attacker.face.steps", 1000), ("attacker.appearance.steps", 7), ("joint.minmax.id_p", 3)):
        over = load_train_config("cpu", [f"{key}={value}"])
        section, field = key.rsplit(".", 1)
        got, want = (reduce(getattr, section.split("."), cfg) for cfg in (over, base))
        assert getattr(got, field) == value
        assert got.model_dump(exclude={field}) == want.model_dump(exclude={field}), key
    assert load_train_config("cpu", ["attacker.face.steps=1000"]).attacker.face.crop_hw == (32, 32)


def test_at_the_defaults_the_adversary_attacks_every_clip_the_audit_tap_sends() -> None:
    """A camera sends one clip (a burst of ``camera.audit_burst`` windows, what the adversary unrolls) every
    ``camera.audit_every_s``; a round comes every ``adversary.interval_s`` and newly reconstructs at most
    ``adversary.max_new_clips`` clips a camera: at the defaults a round takes every clip sent since the last
    one (at 2, the 42nd session's, it fell one clip behind a round and never attacked a third of them)."""
    cfg = Config()
    assert cfg.camera.audit_burst == cfg.adversary.clip_windows
    assert cfg.adversary.max_new_clips * cfg.camera.audit_every_s >= cfg.adversary.interval_s
