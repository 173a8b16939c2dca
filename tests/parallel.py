"""The suite on two pytest-xdist workers (issue #20). ``make unit`` runs it in two phases:

1. ``pytest -n 2 --dist loadgroup -m "not alone"``: every test but the ``alone`` ones, on two workers;
2. ``pytest -m alone``: the tests that must have the machine to themselves, one after another. A test is
   ``alone`` when it asserts against the wall clock (a stream kept in real time, a paced replay's
   duration) or starts a multi-node Ray cluster (a second Ray instance beside it breaks its connections).

In phase 1 the unit of work is a test file (:class:`FileOrGroupScheduling`), so a module fixture (an
embedded Redis, a running demo) starts once; files that share a costly session fixture say so with
``pytestmark = pytest.mark.xdist_group("name")`` and run on one worker, so it is built once. The files
that hold a ``slow`` test go first (:func:`slow_files_first`), so no long file ends the run alone.
"""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadGroupScheduling


class FileOrGroupScheduling(LoadGroupScheduling):
    """xdist's ``loadgroup`` with the test file, not the single test, as the unit for ungrouped tests:
    ``--dist loadfile`` plus ``xdist_group`` (``loadgroup`` appends ``@name`` to a grouped test's id)."""

    def _split_scope(self, nodeid: str) -> str:
        if nodeid.rfind("@") > nodeid.rfind("]"):  # a parameter value may hold an "@"
            return nodeid.rsplit("@", 1)[-1]
        return nodeid.split("::", 1)[0]


def slow_files_first(items: list[Any]) -> None:
    """Reorder the collected tests (in place) so the files that hold a ``slow`` test come first, each file
    kept whole and in its own order: the long files start at once instead of ending the run alone on one
    worker. Every worker collects, and sorts, the same list."""
    slow_files = {item.nodeid.split("::", 1)[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in slow_files)  # stable: files stay whole
