"""One file loader for every YAML / JSON file an operator points at (orchestration/infra/files.py): a file
that cannot be read or parsed is the caller's domain error, naming the file, never an OSError or a parser
exception; and every loader of the project goes through it, so all of them say the same thing."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from anonreid.orchestration.infra.files import load_json, load_yaml


class DomainError(ValueError):
    pass


BAD_FILES: dict[str, tuple[str, str]] = {  # name -> (how to make it, expected message after the path)
    "missing": ("", r": No such file or directory$"),
    "directory": ("mkdir", r": Is a directory$"),
    "bad_yaml": ("a: [1, 2\n", r" is not valid YAML: .*line 2"),
    "bad_json": ('{"a": 1,\n}', r" is not valid JSON: .*line 2 column 1"),
}


def _make(tmp_path: Path, name: str) -> Path:
    content, _ = BAD_FILES[name]
    path = tmp_path / f"{name}.file"
    if content == "mkdir":
        path.mkdir()
    elif content:
        path.write_text(content)
    return path


@pytest.mark.parametrize(("loader", "name"), [
    (load_yaml, "missing"), (load_yaml, "directory"), (load_yaml, "bad_yaml"),
    (load_json, "missing"), (load_json, "directory"), (load_json, "bad_json"),
])
def test_a_bad_file_is_the_callers_error_naming_the_file(
        tmp_path: Path, loader: Callable[..., Any], name: str) -> None:
    path = _make(tmp_path, name)
    with pytest.raises(DomainError) as info:
        loader(path, "widget file", DomainError)
    message = str(info.value)
    prefix = "cannot read widget file " if name in ("missing", "directory") else "widget file "
    assert message.startswith(prefix + str(path)), message
    assert re.search(BAD_FILES[name][1], message, re.DOTALL), message
    assert info.value.__cause__ is not None  # the OSError / parser error is kept for a traceback


def test_a_good_file_is_its_document(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("a: [1, 2]\n")
    (tmp_path / "a.json").write_text('{"a": [1, 2]}')
    (tmp_path / "empty.yaml").write_text("")
    assert load_yaml(tmp_path / "a.yaml", "x", DomainError) == {"a": [1, 2]}
    assert load_json(str(tmp_path / "a.json"), "x", DomainError) == {"a": [1, 2]}
    assert load_yaml(tmp_path / "empty.yaml", "x", DomainError) is None


def _config(path: Path) -> None:
    from anonreid.orchestration.config import load_config

    load_config(path)


def _tokens(path: Path) -> None:
    from anonreid.orchestration.security.tokens import TokenStore

    TokenStore.load(path)


def _new_token(path: Path) -> None:
    from anonreid.orchestration.security.tokens import create_token

    create_token(path, "ops", "operator")


def _policy(path: Path) -> None:
    from anonreid.models.evaluation.privacy_policy import PrivacyPolicy

    PrivacyPolicy.load(path)


def _dashboard(path: Path) -> None:
    from anonreid.orchestration.observability import load_dashboard

    load_dashboard(path)


@pytest.mark.parametrize(("load", "error", "what", "syntax"), [
    (_config, "ConfigError", "config file", "bad_yaml"),
    (_tokens, "TokenError", "token file", "bad_yaml"),
    (_new_token, "TokenError", "token file", "bad_yaml"),
    (_policy, "PolicyError", "privacy policy", "bad_yaml"),
    (_dashboard, "DashboardError", "dashboard", "bad_json"),
])
def test_every_loader_names_its_bad_file(tmp_path: Path, load: Callable[[Path], None], error: str, what: str,
                                         syntax: str) -> None:
    for name in ("directory", syntax):
        path = _make(tmp_path, name)
        with pytest.raises(ValueError) as info:
            load(path)
        assert type(info.value).__name__ == error
        assert str(path) in str(info.value) and what in str(info.value), info.value
