"""The synthetic four-camera world and its event simulator.

Procedural people (:mod:`.people`) walk through four cameras (:mod:`.cameras`) on a schedule
(:mod:`.schedule`, :mod:`.live`); they are rendered in torch (:mod:`.render`) and fed to an ESIM-style
event simulator (:mod:`.simulator`, driven per camera by :mod:`.scene`). Offline datasets
(:mod:`.dataset`) and the live world (:mod:`.live`) share the same code. Heavy modules are imported
lazily so ``import anonreid.events.world`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anonreid.events.world.dataset import PassData, PassInfo, WorldDataset, simulate_dataset
    from anonreid.events.world.live import CameraTransition, GroundTruthWindow, LiveWorld

__all__ = ["CameraTransition", "GroundTruthWindow", "LiveWorld", "PassData", "PassInfo", "WorldDataset",
           "simulate_dataset"]

_WHERE = {"PassData": "dataset", "PassInfo": "dataset", "WorldDataset": "dataset", "simulate_dataset": "dataset",
          "CameraTransition": "live", "GroundTruthWindow": "live", "LiveWorld": "live"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"anonreid.events.world.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'anonreid.events.world' has no attribute {name!r}")
