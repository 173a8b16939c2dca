"""CPU priority of background work: what may slow down so that the cameras keep real time."""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger(__name__)


def lower_cpu_priority(who: str) -> None:
    """Give the calling thread, and the threads it starts, the lowest CPU priority (nice 19; on Linux
    per thread). Ray runs its workers at nice 15, so a camera's pipeline outweighs such a thread about
    2.4 to 1 when the CPUs are contended, and it still gets a share: it slows down but never stops.
    ``who`` names the thread in the warning when the platform refuses."""
    if not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id() if sys.platform.startswith("linux") else 0
    try:
        os.setpriority(os.PRIO_PROCESS, tid, 19)
    except OSError as exc:  # a sandbox may forbid it; the work still runs, only at normal priority
        log.warning("%s: cannot lower the CPU priority: %s", who, exc)
