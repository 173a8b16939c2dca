"""The installed anonreid version, readable from any layer (checkpoints record it, the CLI prints it)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    try:
        return version("anonreid")
    except PackageNotFoundError:  # running from a tree that was never installed
        return "0+unknown"
