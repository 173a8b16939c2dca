"""``anonreid gallery serve`` as an operator runs it: a real process with its embedded Redis under a data
directory, on a free localhost port, the console off (or on a free port); its output goes to a log file
the tests read."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from prometheus_server import free_port

ANONREID = Path(sys.executable).with_name("anonreid")


class GalleryProcess:
    def __init__(self, data_dir: Path, log: Path, *, process_group: int = 0, console: bool = False,
                 overrides: Sequence[str] = ()) -> None:
        """``process_group``: the group to start in (0: a new group, led by the gallery); ``console``: serve
        the console on a free port (:attr:`console_port` once serving); ``overrides``: more ``--set``."""
        self.data_dir, self.log = data_dir, log
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.console_port = 0
        sets = [f"redis.embedded_dir={data_dir}", "gallery.metrics_port=0",
                "console.port=0" if console else "console.enabled=false", *overrides]
        self.proc = subprocess.Popen(
            [str(ANONREID), "gallery", "serve", "--port", str(self.port), *(x for s in sets for x in ("--set", s))],
            stdout=log.open("ab"), stderr=subprocess.STDOUT, process_group=process_group,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_serving(self, timeout_s: float = 90.0) -> GalleryProcess:
        deadline = time.monotonic() + timeout_s
        while "gallery serving on" not in self.output():
            if self.proc.poll() is not None:
                raise AssertionError(f"gallery exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"gallery not serving after {timeout_s:.0f} s:\n{self.output()[-3000:]}")
            time.sleep(0.1)
        if console := re.search(r"console on http://[^\s:]+:(\d+)", self.output()):
            self.console_port = int(console.group(1))
        return self

    def terminate(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, as a supervisor stops it; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
