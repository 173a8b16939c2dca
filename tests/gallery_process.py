"""``anonreid gallery serve`` as an operator runs it: a real process with its embedded Redis under a data
directory, on a free localhost port, the console off; its output goes to a log file the tests read."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from prometheus_server import free_port

ANONREID = Path(sys.executable).with_name("anonreid")


class GalleryProcess:
    def __init__(self, data_dir: Path, log: Path, *, process_group: int = 0) -> None:
        """``process_group``: the group to start in (0: a new group, led by the gallery)."""
        self.data_dir, self.log = data_dir, log
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(ANONREID), "gallery", "serve", "--port", str(self.port), "--set", f"redis.embedded_dir={data_dir}",
             "--set", "gallery.metrics_port=0", "--set", "console.enabled=false"],
            stdout=log.open("ab"), stderr=subprocess.STDOUT, process_group=process_group,
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
