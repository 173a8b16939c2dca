from pathlib import Path

import pytest
from typer.testing import CliRunner

from anonreid.orchestration.cli import app
from anonreid.orchestration.config import ConfigError, load_config, parse_override


def test_defaults_are_valid_and_frozen():
    cfg = load_config()
    assert cfg.events.num_bins == 5 and cfg.events.window_us == 33_333
    with pytest.raises(Exception, match="frozen"):
        cfg.events.num_bins = 3  # type: ignore[misc]


def test_yaml_then_overrides(tmp_path: Path):
    f = tmp_path / "c.yaml"
    f.write_text("gallery:\n  port: 6000\n  host: 0.0.0.0\n")
    cfg = load_config(f, ["gallery.port=7000", "ray.num_cpus=1"])
    assert (cfg.gallery.host, cfg.gallery.port, cfg.ray.num_cpus) == ("0.0.0.0", 7000, 1)


def test_unknown_key_is_named(tmp_path: Path):
    f = tmp_path / "c.yaml"
    f.write_text("gallery:\n  prot: 6000\n")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert "gallery.prot: unknown key" in str(err.value)
    assert str(f) in str(err.value)


def test_wrong_type_names_key_and_expected_type():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["gallery.port=abc", "events.window_us=[1]"])
    msg = str(err.value)
    assert "gallery.port: expected int, got 'abc'" in msg
    assert "events.window_us: expected int" in msg


def test_section_must_be_a_mapping():
    with pytest.raises(ConfigError, match="ray: expected a mapping"):
        load_config(None, ["ray=3"])


def test_bad_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("gallery: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(lst)


def test_parse_override():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("a=x") == (["a"], "x")
    with pytest.raises(ConfigError):
        parse_override("novalue")


def test_cli_config_show_and_errors():
    runner = CliRunner()
    ok = runner.invoke(app, ["config", "show", "--set", "gallery.port=1234"])
    assert ok.exit_code == 0, ok.output
    assert "port: 1234" in ok.output
    bad = runner.invoke(app, ["config", "show", "--set", "gallery.nope=1"])
    assert bad.exit_code == 2
    assert "gallery.nope: unknown key" in bad.output


def test_cli_version():
    result = CliRunner().invoke(app, ["version"])
    assert result.exit_code == 0 and result.output.strip()
