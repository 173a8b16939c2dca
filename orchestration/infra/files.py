"""Reading a YAML or JSON file an operator pointed at, every failure raised as the caller's domain error.

The one place for the two messages a user sees when such a file cannot be used, each naming the file:
``cannot read <what> <path>: <reason>`` (missing, a directory, no permission) and ``<what> <path> is not
valid YAML`` (or JSON) with the parser's line and column. The caller checks the shape of what it gets.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

#: builds the caller's domain error from its message (the error class itself, e.g. ``ConfigError``)
ErrorFactory = Callable[[str], Exception]


def load_yaml(path: str | Path, what: str, error: ErrorFactory) -> Any:
    """The document in the YAML file at ``path`` (None when the file is empty); ``what`` names the file
    in the message of ``error``, raised when the file cannot be read or parsed."""
    return _load(Path(path), what, error, yaml.safe_load, "YAML", yaml.YAMLError)


def load_json(path: str | Path, what: str, error: ErrorFactory) -> Any:
    """The document in the JSON file at ``path``; errors as :func:`load_yaml`."""
    return _load(Path(path), what, error, json.loads, "JSON", json.JSONDecodeError)


def _load(path: Path, what: str, error: ErrorFactory, parse: Callable[[str], Any], syntax: str,
          syntax_error: type[Exception]) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from exc
    try:
        return parse(text)
    except syntax_error as exc:
        raise error(f"{what} {path} is not valid {syntax}: {exc}") from exc
