"""Make a deletion reach Redis's files on disk.

A deleted key is gone from memory at once, but Redis's persistence keeps it: the append-only file holds
every write since its last rewrite (the deleted values included, followed by the DEL), and the RDB
snapshot holds the data as of the last save. :func:`rewrite_persistence` has the server rewrite both
from what it holds *now*; when it returns, no persistence file of that server contains a value that was
deleted before the call. The old files are replaced by ``rename``, so their data is unlinked from the
directory (not overwritten on the device: encrypted volumes cover that).

A rewrite already running when the call starts forked before the deletion (and an append-only rewrite
carries the deleted values forward into its new file, followed by the DEL), so it is waited for and a
new one is started after it.
"""

from __future__ import annotations

import time
from typing import Any

import redis

POLL_S = 0.05


class PersistenceRewriteError(RuntimeError):
    """Redis did not (or could not) rewrite its persistence files."""


def rewrite_persistence(client: redis.Redis, timeout_s: float = 60.0) -> list[str]:
    """Rewrite the append-only file (BGREWRITEAOF) and save a new RDB snapshot (BGSAVE), each only when
    the server has it enabled, and wait for both; returns what was rewritten (``"aof"``, ``"rdb"``).

    Raises :class:`PersistenceRewriteError` when a rewrite fails, takes longer than ``timeout_s``, or the
    server refuses the commands (e.g. a managed Redis that disables CONFIG or BGREWRITEAOF)."""
    deadline = time.monotonic() + timeout_s
    try:
        info = client.info("persistence")
        snapshots = bool(client.config_get("save").get("save"))
        done = []
        if int(info.get("aof_enabled", 0)):
            _run(client, "aof", deadline)
            done.append("aof")
        if snapshots:
            _run(client, "rdb", deadline)
            done.append("rdb")
    except redis.RedisError as exc:
        raise PersistenceRewriteError(f"Redis could not rewrite its persistence files: {exc}") from exc
    return done


# per kind: the command, and the INFO field with the status of its last run
_KINDS = {"aof": ("BGREWRITEAOF", "aof_last_bgrewrite_status"), "rdb": ("BGSAVE", "rdb_last_bgsave_status")}
_CHILDREN = ("aof_rewrite_in_progress", "aof_rewrite_scheduled", "rdb_bgsave_in_progress")
_BUSY = ("in progress", "another child process is active")  # refusals that waiting resolves


def _run(client: redis.Redis, kind: str, deadline: float) -> None:
    command, status = _KINDS[kind]
    while True:
        _wait(client, deadline, kind)  # a run that started before the caller's deletion does not count
        try:
            client.execute_command(command)  # answers once the child forked (or the rewrite is scheduled)
            break
        except redis.ResponseError as exc:  # another client's run started meanwhile
            if not any(b in str(exc).lower() for b in _BUSY):
                raise
            if time.monotonic() > deadline:
                raise PersistenceRewriteError(f"Redis kept refusing {command}: {exc}") from exc
            time.sleep(POLL_S)
    info = _wait(client, deadline, kind)
    if info.get(status) != "ok":
        raise PersistenceRewriteError(f"Redis {command} failed ({status}: {info.get(status)}); see the server's log")


def _wait(client: redis.Redis, deadline: float, kind: str) -> dict[str, Any]:
    """Until no rewrite or save runs or is scheduled; returns the last INFO persistence."""
    while True:
        info = client.info("persistence")
        if not any(int(info.get(f, 0)) for f in _CHILDREN):
            return info
        if time.monotonic() > deadline:
            raise PersistenceRewriteError(f"Redis's {kind} rewrite did not finish in time")
        time.sleep(POLL_S)
