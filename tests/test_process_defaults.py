"""The environment an ``anonreid`` process sets up for itself before a command imports torch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")

PROBE = """
import re, sys
from anonreid.orchestration.cli import process_defaults
assert "torch" not in sys.modules, "the CLI's own imports load torch before process_defaults can run"
process_defaults()
import torch
t = torch.ones(64 << 20, dtype=torch.uint8)  # 64 MB, touched
print(int(re.search(r"AnonHugePages:\\s+(\\d+) kB", open("/proc/self/smaps_rollup").read()).group(1)))
"""


def _huge_kb(env_value: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    if env_value is not None:
        env["THP_MEM_ALLOC_ENABLE"] = env_value
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not THP.exists() or "[never]" in THP.read_text(), reason="the kernel gives no huge pages")
def test_an_anonreid_process_backs_large_tensors_with_huge_pages_unless_told_otherwise() -> None:
    """``process_defaults`` (run by ``anonreid``'s ``main``) turns on PyTorch's huge-page allocation, so a
    64 MB tensor lies in transparent huge pages; a ``THP_MEM_ALLOC_ENABLE=0`` already in the environment is
    kept (visible where the kernel gives huge pages only on request, its ``madvise`` mode)."""
    assert _huge_kb(None) >= 32 * 1024
    if "[madvise]" in THP.read_text():
        assert _huge_kb("0") < 32 * 1024
