"""What the tests see of processes and sockets, read from /proc (independently of the code under test).

- redis-server processes serving a data directory (their working directory: redis-server chdir()s to
  its ``dir``), or any directory below a root (this session's temporary directories);
- a process tree, and the TCP sockets its processes listen on;
- :func:`child_subreaper`: orphans are re-parented to this process, so a test reaps a daemon it killed
  at once, as a prompt init would (this machine's pid 1 reaps only now and then).
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import signal
import struct
from collections.abc import Iterator
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36


@contextlib.contextmanager
def child_subreaper() -> Iterator[None]:
    """Meanwhile, processes orphaned below this one (a daemonised redis-server) become its children."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def alive(pid: int) -> bool:
    """Running (a zombie, dead but not reaped yet, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _is_redis_server(pid: int) -> bool:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")).startswith("redis-server")
    except OSError:
        return False


def redis_servers_serving(data_dir: Path) -> list[int]:
    """Pids of the live redis-server processes whose working directory is ``data_dir``."""
    want = os.path.realpath(data_dir)
    found = []
    for pid in _pids():
        try:
            if _is_redis_server(pid) and os.readlink(f"/proc/{pid}/cwd") == want and alive(pid):
                found.append(pid)
        except OSError:
            continue
    return found


def kill_redis_servers(data_dir: Path) -> None:
    """Clean-up after a test that failed, or killed a gallery: SIGKILL the redis-servers serving its own
    data directory."""
    for pid in redis_servers_serving(data_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def redis_servers_under(root: Path) -> dict[int, str]:
    """Live redis-server processes whose working directory is ``root`` or below it: pid -> directory."""
    prefix = os.path.realpath(root) + os.sep
    found = {}
    for pid in _pids():
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd").removesuffix(" (deleted)")
            if _is_redis_server(pid) and (cwd + os.sep).startswith(prefix) and alive(pid):
                found[pid] = cwd
        except OSError:
            continue
    return found


def descendants(root: int) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _address(hex_ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    raw = bytes.fromhex(hex_ip)
    if len(raw) == 4:  # /proc/net/tcp prints the address as one little-endian 32-bit word
        return ipaddress.IPv4Address(raw[::-1])
    words = struct.unpack("<4I", raw)  # tcp6: four little-endian 32-bit words
    return ipaddress.IPv6Address(struct.pack(">4I", *words))


def listening_sockets(pids: list[int]) -> list[tuple[str, int, int]]:
    """(bound address, port, pid) of every TCP socket in LISTEN state owned by one of ``pids``."""
    owner = {inode: pid for pid in pids for inode in _socket_inodes(pid)}
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in owner:  # 0A: TCP_LISTEN
                continue
            hex_ip, hex_port = fields[1].split(":")
            found.append((str(_address(hex_ip)), int(hex_port, 16), owner[fields[9]]))
    return found


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback

