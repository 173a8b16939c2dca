"""The gallery's command line: `anonreid gallery serve` as a real process, the operator commands against it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
from typer.testing import CliRunner

from anonreid.gallery.client import GalleryClient
from anonreid.gallery.synthetic import noisy, prototypes, sighting
from anonreid.orchestration.cli import app

S = 1_000_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_then_operator_commands(tmp_path):
    port = _free_port()
    cmd = [sys.executable, "-m", "anonreid.orchestration.cli", "gallery", "serve", "--port", str(port),
           "--set", "gallery.metrics_port=0", "--set", "console.port=0",
           "--set", f"redis.embedded_dir={tmp_path / 'redis'}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=os.environ | {"PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "gallery serving on" in line or proc.poll() is not None:
                break
        assert any(f"127.0.0.1:{port}" in line for line in lines), "".join(lines)
        address = f"127.0.0.1:{port}"
        rng = np.random.default_rng(0)
        (p,) = prototypes(1, 256, rng)
        with GalleryClient(address) as client:
            acks = client.publish([sighting("c1", "cam1", "t1", 0, 2 * S, noisy(p, 0.3, rng)),
                                   sighting("c2", "cam2", "t1", 10 * S, 12 * S, noisy(p, 0.3, rng))])
        ident = acks[0].identity_id
        assert acks[1].identity_id == ident
        runner = CliRunner()

        def cli(*args: str) -> tuple[int, str]:
            result = runner.invoke(app, [*args, "--address", address])
            # what succeeded is read from stdout alone (a Ray connected earlier in this worker forwards its
            # raylet's warnings to stderr); a failure's message is on stderr
            return result.exit_code, result.stdout if result.exit_code == 0 else result.output

        code, out = cli("identities", "--json")
        assert code == 0 and json.loads(out)[0]["identity"] == ident and json.loads(out)[0]["cameras"] == "cam1 > cam2"
        code, out = cli("trajectory", ident, "--json")
        assert code == 0 and [s["camera"] for s in json.loads(out)["steps"]] == ["cam1", "cam2"]
        code, out = cli("search", "--sighting", "c1", "-k", "1", "--json")
        assert code == 0 and json.loads(out)[0]["sighting"] == "c2"
        code, out = cli("identities")  # the table
        assert code == 0 and ident in out
        code, out = cli("trajectory", "id-999999")
        assert code == 1 and "NOT_FOUND" in out
        code, out = cli("forget", ident, "--reason", "cli test")
        assert code == 0 and "2 sighting(s) erased" in out
        code, out = cli("identities", "--json")
        assert code == 0 and json.loads(out) == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
