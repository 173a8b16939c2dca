"""The suite on two pytest-xdist workers (issue #20). ``make unit`` runs it in two phases:

1. ``pytest -n 2 --dist loadgroup -m "not alone"``: every test but the ``alone`` ones, on two workers;
2. ``pytest -m alone``: the tests that must have the machine to themselves, one after another. A test is
   ``alone`` when it asserts against the wall clock (a stream kept in real time, a paced replay's
   duration) or starts a multi-node Ray cluster (a second Ray instance beside it breaks its connections).

In phase 1 the unit of work is a test file (:class:`FileOrGroupScheduling`), so a module fixture (an
embedded Redis, a running demo) starts once; files that share a costly session fixture say so with
``pytestmark = [..., pytest.mark.xdist_group("name")]`` and run on one worker, so it is built once. The
files that hold a ``slow`` test go first (:func:`slow_files_first`), so no long file ends the run alone.

The group is read from the file's own ``pytestmark`` line (:func:`file_group`): xdist 3.8 marks a grouped
test by appending ``@name`` to ``item._nodeid``, which pytest 9 no longer reads (a node's id is
``item._id``), so under pytest 9 the ids reach the scheduler without the group and the files of a group
were split between the workers, each building the shared fixture.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from xdist.scheduler import LoadGroupScheduling

_GROUP = re.compile(r"""xdist_group\(\s*(?:name\s*=\s*)?["']([^"']+)["']""")


@functools.cache
def file_group(path: Path) -> str | None:
    """The ``xdist_group`` a test file's module-level ``pytestmark`` names (None: none, or no such file)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for k, line in enumerate(lines):
        if line.startswith("pytestmark"):
            statement = "\n".join(lines[k : next((j for j in range(k + 1, len(lines)) if not lines[j].strip()), len(lines))])
            found = _GROUP.search(statement)
            return found.group(1) if found else None
    return None


class FileOrGroupScheduling(LoadGroupScheduling):
    """xdist's ``loadgroup`` with the test file, not the single test, as the unit for ungrouped tests:
    ``--dist loadfile`` plus the file's ``xdist_group`` (module docstring)."""

    def _split_scope(self, nodeid: str) -> str:
        if nodeid.rfind("@") > nodeid.rfind("]"):  # xdist's own group suffix (a parameter value may hold an "@")
            return nodeid.rsplit("@", 1)[-1]
        file = nodeid.split("::", 1)[0]
        return file_group(Path(self.config.rootpath) / file) or file


def slow_files_first(items: list[Any]) -> None:
    """Reorder the collected tests (in place) so the files that hold a ``slow`` test come first, each file
    kept whole and in its own order: the long files start at once instead of ending the run alone on one
    worker. Every worker collects, and sorts, the same list."""
    slow_files = {item.nodeid.split("::", 1)[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in slow_files)  # stable: files stay whole
