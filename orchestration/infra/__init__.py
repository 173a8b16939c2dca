"""Shared infrastructure, the bottom layer: it imports no pipeline package (docs/ARCHITECTURE.md).

Holds what every layer may use: the package version, the shared time conventions (``timebase``); the
config tree, security and the Redis / Ray service handles, which still live in ``orchestration/``,
belong here too.
"""
