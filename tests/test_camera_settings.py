"""The camera's detector, tracker and publish retry are settings of the config tree (issue #20 item 3):
``camera.detector.*``, ``camera.tracker.*`` and ``camera.publish_backoff_max_s`` reach a real camera node
from a YAML file and from ``--set``, a bad value is a config error naming the key, and the defaults are
the values the code had before (the camera equivalence test checks the output is unchanged)."""

from __future__ import annotations

import logging
import re
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from anonreid.events.detection import ActivityDetector
from anonreid.events.types import SensorSize, make_events
from anonreid.nodes.tracking import Tracker
from anonreid.orchestration.cli import app
from anonreid.orchestration.config import CameraConfig, ConfigError, load_config

#: the values DetectorConfig / TrackerConfig (events/detection.py, nodes/tracking.py dataclasses) and
#: MAX_BACKOFF_S (nodes/camera/publisher.py) had before they moved into the config tree
OLD_DETECTOR = {"cell": 4, "decay": 0.5, "threshold": 0.08, "close_iterations": 2, "min_height": 16.0,
                "min_area": 160.0, "min_aspect": 0.6, "max_aspect": 8.0, "min_fill": 0.15, "merge_gap": 6.0,
                "merge_overlap": 0.5, "hot_pixel_rate": 0.8, "hot_pixel_halflife": 60.0}
#: settings added since, with their defaults (noise_factor: the threshold follows a noisy sensor's background)
NEW_DETECTOR = {"noise_factor": 3.0}
OLD_TRACKER = {"iou_threshold": 0.15, "min_hits": 3, "max_misses": 8, "velocity_smoothing": 0.5, "max_tracks": 64,
               "max_gap_windows": 30}
#: settings added since (two people in one blob are held, not lost: nodes/tracking.py)
NEW_TRACKER = {"hold_overlap": 0.5, "max_hold_windows": 150}
#: a valid value other than the default for every setting
DETECTOR = {"cell": 8, "decay": 0.25, "threshold": 0.1, "close_iterations": 1, "min_height": 20.0, "min_area": 200.0,
            "min_aspect": 0.8, "max_aspect": 6.0, "min_fill": 0.2, "merge_gap": 4.0, "merge_overlap": 0.7,
            "hot_pixel_rate": 0.9, "hot_pixel_halflife": 30.0, "noise_factor": 2.0}
TRACKER = {"iou_threshold": 0.3, "min_hits": 2, "max_misses": 5, "velocity_smoothing": 0.25, "max_tracks": 16,
           "max_gap_windows": 12, "hold_overlap": 0.6, "max_hold_windows": 90}
SENSOR = SensorSize(320, 240)


def _settings(detector: ActivityDetector, tracker: Tracker) -> tuple[dict[str, Any], dict[str, Any]]:
    return ({k: getattr(detector, k) for k in (*OLD_DETECTOR, *NEW_DETECTOR)},
            {k: getattr(tracker, k) for k in (*OLD_TRACKER, *NEW_TRACKER)})


def test_defaults_are_the_previous_values() -> None:
    cfg = CameraConfig()
    assert (cfg.detector.model_dump(), cfg.tracker.model_dump()) == (OLD_DETECTOR | NEW_DETECTOR,
                                                                     OLD_TRACKER | NEW_TRACKER)
    assert cfg.publish_backoff_max_s == 30.0
    # a detector / tracker built without a config (models/evaluation, tests) takes the same values
    assert _settings(ActivityDetector(SENSOR), Tracker()) == (OLD_DETECTOR | NEW_DETECTOR, OLD_TRACKER | NEW_TRACKER)


def _dead_address() -> str:
    with socket.socket() as s:  # a port nothing listens on: every publish fails at once
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.usefixtures("one_torch_thread")
def test_yaml_and_set_reach_a_camera_nodes_detector_tracker_and_publisher(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The detector from the YAML file, the tracker and the publish backoff from --set, through the path
    `anonreid camera run --source FILE` takes (CameraService with the resolved config's camera section)."""
    from anonreid.events.io import write_npz
    from anonreid.gallery.synthetic import sighting
    from anonreid.nodes.actors import CameraService
    from anonreid.nodes.sources import SourceSpec

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"camera": {"detector": DETECTOR}}))
    overrides = [f"camera.tracker.{k}={v}" for k, v in TRACKER.items()] + ["camera.publish_backoff_max_s=0.1"]
    cfg = load_config(config, overrides)
    recording = write_npz(tmp_path / "rec.npz", make_events([10, 20], [5, 6], [7, 8], [1, -1]), SENSOR)
    spec = SourceSpec(kind="file", camera_id="cam1", path=str(recording), realtime=False)
    service = CameraService(spec, _dead_address(), camera=cfg.camera, events=cfg.events)
    node = service.node
    try:
        assert _settings(node.detector, node.tracker) == (DETECTOR, TRACKER)
        assert node.publisher is not None and node.publisher.max_backoff_s == 0.1
        node.publisher.client.retry_timeout_s = 0.0  # type: ignore[attr-defined]  # fail each publish at once
        # the gallery is down: the retries come every 0.1 s at most, not after 1, 2, 4 ... 30 s
        with caplog.at_level(logging.WARNING, logger="anonreid.nodes.camera.publisher"):
            node.publisher.submit([sighting("s1", "cam1", "t1", 0, 1, np.ones(256, np.float32))])  # type: ignore[list-item]
            time.sleep(1.0)
        waits = [float(w) for w in re.findall(r"retrying in ([\d.e+-]+) s", caplog.text)]
        assert len(waits) >= 4 and max(waits) <= 0.1, waits
    finally:
        node.close()
        service.source.close()


@pytest.mark.parametrize(("override", "message"), [
    ("camera.tracker.iou_threshold=1.5", "camera.tracker.iou_threshold: expected float, got 1.5"),
    ("camera.tracker.min_hits=0", "camera.tracker.min_hits: expected int, got 0"),
    ("camera.tracker.max_misses=many", "camera.tracker.max_misses: expected int, got 'many'"),
    ("camera.detector.decay=1", "camera.detector.decay: expected float, got 1"),
    ("camera.detector.cel=8", "camera.detector.cel: unknown key"),
    ("camera.detector.min_aspect=9", "camera.detector: aspect range [min_aspect 9.0, max_aspect 8.0] is empty"),
    ("camera.publish_backoff_max_s=0", "camera.publish_backoff_max_s: expected float, got 0"),
])
def test_a_bad_value_is_a_config_error_naming_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert message in str(err.value)


def test_camera_run_refuses_a_bad_tracker_value_before_starting() -> None:
    result = CliRunner().invoke(app, ["camera", "run", "--camera", "cam1", "--set", "camera.tracker.min_hits=-1"])
    assert result.exit_code == 2, result.output
    assert "camera.tracker.min_hits: expected int, got -1" in result.output
