"""The suite's own parallel machinery (tests/parallel.py): the scheduling scopes and the file order."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from parallel import FileOrGroupScheduling, file_group, slow_files_first


def test_a_file_is_one_scope_and_a_group_joins_files(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("import pytest\n\nx = 'xdist_group(\"not this\")'\n")
    for name in ("test_b.py", "test_c.py"):
        (tmp_path / "tests" / name).write_text(
            'import pytest\n\npytestmark = [pytest.mark.usefixtures("f"),\n              pytest.mark.xdist_group("tiny-run")]\n')
    sched = SimpleNamespace(config=SimpleNamespace(rootpath=tmp_path))

    def split(nodeid: str) -> str:
        return FileOrGroupScheduling._split_scope(sched, nodeid)  # type: ignore[arg-type]

    assert split("tests/test_a.py::test_x") == split("tests/test_a.py::test_y[1]") == "tests/test_a.py"
    assert split("tests/test_a.py::Cls::test_z") == "tests/test_a.py"
    assert split("tests/test_b.py::test_x") == split("tests/test_c.py::test_y[2]") == "tiny-run"  # the files' pytestmark
    assert split("tests/test_a.py::test_x@g") == split("tests/test_d.py::test_y@g") == "g"  # xdist's own suffix
    assert split("tests/test_a.py::test_x[a@b]") == "tests/test_a.py"  # an "@" in a parameter is not a group


def test_the_suites_tiny_run_files_are_one_group() -> None:
    """The two files that read the session's tiny training run share one worker (it is trained once)."""
    root = Path(__file__).resolve().parents[1]
    assert file_group(root / "tests" / "test_models_world.py") == file_group(root / "tests" / "test_eval_end_to_end.py") \
        == "tiny-run"


def test_files_with_a_slow_test_come_first_and_stay_whole() -> None:
    def item(nodeid: str, slow: bool = False) -> SimpleNamespace:
        return SimpleNamespace(nodeid=nodeid, get_closest_marker=lambda name: object() if slow and name == "slow" else None)

    items = [item("a.py::1"), item("a.py::2"), item("b.py::1"), item("b.py::2", slow=True), item("c.py::1"),
             item("d.py::1", slow=True), item("d.py::2")]
    slow_files_first(items)  # type: ignore[arg-type]
    assert [i.nodeid for i in items] == ["b.py::1", "b.py::2", "d.py::1", "d.py::2", "a.py::1", "a.py::2", "c.py::1"]
