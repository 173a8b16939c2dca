"""The camera node as a package of stages with a thin coordinator (:class:`CameraNode`, ``node.py``).

See ``node.py`` for the pipeline and docs/ARCHITECTURE.md for where each stage lives.
"""

from anonreid.nodes.camera.ground_truth import GroundTruthFn
from anonreid.nodes.camera.node import CameraNode
from anonreid.nodes.camera.windows import WindowItem, WindowQueue

__all__ = ["CameraNode", "GroundTruthFn", "WindowItem", "WindowQueue"]
