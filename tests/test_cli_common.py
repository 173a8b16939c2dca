"""The commands' shared prologue (orchestration/cli_common.py): an option that falls back on a config key,
and exit code 2 naming both when neither is set, the same for every command that needs one."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from anonreid.orchestration.cli import app
from anonreid.orchestration.cli_common import option_or_config


def test_the_option_wins_then_the_config_then_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert option_or_config("redis://a", "redis://b", "--redis-url", "redis.url", "Redis") == "redis://a"
    assert option_or_config("", "redis://b", "--redis-url", "redis.url", "Redis") == "redis://b"
    with pytest.raises(typer.Exit) as info:
        option_or_config("", "", "--redis-url", "redis.url", "Redis")
    assert info.value.exit_code == 2
    assert capsys.readouterr().err == "error: no Redis: give --redis-url or set redis.url\n"


@pytest.mark.parametrize(("args", "message"), [
    (["place-cameras"], "error: no Ray cluster to join: give --ray-address or set ray.address"),
    (["gateway", "push", "{tmp}/events.npz", "--camera", "cam1"],
     "error: no Redis to push to: give --redis-url or set redis.url"),
    (["adversary", "run"], "error: no Redis: give --redis-url or set redis.url"),
    (["audit", "report", "--out", "{tmp}/report"], "error: no Redis: give --redis-url or set redis.url"),
])
def test_every_command_that_needs_a_service_names_the_option_and_the_key(
        tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, [a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "report").exists()  # nothing done before the check
