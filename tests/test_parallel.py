"""The suite's own parallel machinery (tests/parallel.py): the scheduling scopes and the file order."""

from __future__ import annotations

from types import SimpleNamespace

from parallel import FileOrGroupScheduling, slow_files_first


def test_a_file_is_one_scope_and_a_group_joins_files() -> None:
    split = FileOrGroupScheduling._split_scope
    assert split(None, "tests/test_a.py::test_x") == split(None, "tests/test_a.py::test_y[1]") == "tests/test_a.py"
    assert split(None, "tests/test_a.py::Cls::test_z") == "tests/test_a.py"
    assert split(None, "tests/test_a.py::test_x@tiny-run") == split(None, "tests/test_b.py::test_y@tiny-run") == "tiny-run"
    assert split(None, "tests/test_a.py::test_x[a@b]") == "tests/test_a.py"  # an "@" in a parameter is not a group


def test_files_with_a_slow_test_come_first_and_stay_whole() -> None:
    def item(nodeid: str, slow: bool = False) -> SimpleNamespace:
        return SimpleNamespace(nodeid=nodeid, get_closest_marker=lambda name: object() if slow and name == "slow" else None)

    items = [item("a.py::1"), item("a.py::2"), item("b.py::1"), item("b.py::2", slow=True), item("c.py::1"),
             item("d.py::1", slow=True), item("d.py::2")]
    slow_files_first(items)  # type: ignore[arg-type]
    assert [i.nodeid for i in items] == ["b.py::1", "b.py::2", "d.py::1", "d.py::2", "a.py::1", "a.py::2", "c.py::1"]
