"""docs/SECURITY.md's mutual-TLS steps, run as written: `anonreid certs`, then `anonreid gallery serve` with
the documented keys (a real process, its console included), and a client with the client pair gets
answers. Without the client pair, the command says exactly which key to set, before starting anything."""

from __future__ import annotations

import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from anonreid.gallery.client import GalleryClient
from anonreid.orchestration.config import SecurityConfig

REPO = Path(__file__).resolve().parents[1]
ANONREID = Path(sys.executable).with_name("anonreid")


def _documented_mtls_steps() -> list[list[str]]:
    """The commands of the fenced block of docs/SECURITY.md that sets security.mtls=true."""
    text = (REPO / "docs" / "SECURITY.md").read_text()
    blocks = text.split("```")[1::2]
    block = next(b for b in blocks if "security.mtls=true" in b)
    joined = block.replace("\\\n", " ")
    return [shlex.split(line.split("#", 1)[0]) for line in joined.splitlines() if line.strip()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _local(redis_module: Any, port: int) -> list[str]:
    """What a test changes: its own Redis and free ports (the documented keys are kept as they are)."""
    extra = ["--redis-url", str(redis_module.url), "--port", str(port), "--set", "gallery.metrics_port=0",
             "--set", "console.port=0"]
    return extra + (["--set", f"redis.password={redis_module.password}"] if redis_module.password else [])


def test_the_documented_mtls_steps_start_the_gallery_and_its_console(redis_module: Any, tmp_path: Path) -> None:
    certs, serve = _documented_mtls_steps()
    assert certs[:2] == ["anonreid", "certs"] and serve[:3] == ["anonreid", "gallery", "serve"]
    done = subprocess.run([str(ANONREID), *certs[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    port = _free_port()
    log = tmp_path / "gallery.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(ANONREID), *serve[1:], *_local(redis_module, port)], cwd=tmp_path,
                                stdout=out, stderr=subprocess.STDOUT)
    pki = tmp_path / "pki"
    security = SecurityConfig(tls=True, mtls=True, ca_cert=str(pki / "ca.pem"), client_cert=str(pki / "client.pem"),
                              client_key=str(pki / "client.key"))
    try:
        deadline = time.monotonic() + 90
        while "gallery serving on" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert "console on http://" in log.read_text()  # the console's channel to the gallery came up
        with GalleryClient(f"localhost:{port}", security=security, retry_timeout_s=5) as client:
            assert client.health() == "SERVING" and client.list_identities() == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_without_the_client_pair_the_command_names_what_to_set(redis_module: Any, tmp_path: Path) -> None:
    certs, serve = _documented_mtls_steps()
    subprocess.run([str(ANONREID), *certs[1:]], cwd=tmp_path, check=True, capture_output=True, timeout=60)
    args, without_pair = iter(serve[1:]), []
    for a in args:  # the documented command less its two --set security.client_... options
        value = next(args) if a == "--set" else None
        if value is None or not value.startswith("security.client_"):
            without_pair += [a] if value is None else [a, value]
    assert "security.mtls=true" in without_pair and not any("client_" in a for a in without_pair)
    done = subprocess.run([str(ANONREID), *without_pair, *_local(redis_module, _free_port())], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "error: security.client_key is not set" in done.stderr, done.stderr
    assert "security.client_cert and security.client_key" in done.stderr and "console.enabled=false" in done.stderr
    assert "Traceback" not in done.stderr and "Is a directory" not in done.stderr
