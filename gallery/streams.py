"""Admission of Publish streams: bounded in all, per client address and per bearer token.

Each open Publish stream holds one gRPC handler thread for as long as it is open, idle or not. The
server sizes its thread pool as ``gallery.max_workers + gallery.max_publish_streams`` and admits at
most ``max_publish_streams`` streams (:class:`StreamLimiter`), so ``max_workers`` threads always remain
for health checks and operator queries. A stream beyond a cap is refused at once with
RESOURCE_EXHAUSTED naming the cap and its configuration key; the refusal holds a thread only for that.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from anonreid.gallery.errors import ResourceExhausted


def peer_host(peer: str) -> str:
    """The client address of a gRPC peer string without its port: ``ipv4:10.0.0.7:5123`` -> ``10.0.0.7``,
    ``ipv6:[::1]:5123`` -> ``[::1]``; anything else (``unix:...``) as it is."""
    kind, sep, rest = peer.partition(":")
    if not sep or kind not in ("ipv4", "ipv6"):
        return peer
    host, _, _port = rest.rpartition(":")
    return host or rest


class StreamLimiter:
    """Counts open Publish streams and refuses one beyond ``total``, ``per_peer`` or ``per_token``."""

    def __init__(self, total: int, per_peer: int, per_token: int) -> None:
        self.total, self.per_peer, self.per_token = total, per_peer, per_token
        self._lock = threading.Lock()
        self._by_peer: Counter[str] = Counter()
        self._by_token: Counter[str] = Counter()
        self._open = 0

    @property
    def open(self) -> int:
        """Streams admitted and not yet closed."""
        with self._lock:
            return self._open

    def _refusal(self, peer: str, token: str) -> ResourceExhausted | None:
        if self._open >= self.total:
            cap, key, whose = self.total, "gallery.max_publish_streams", "in all"
        elif self._by_peer[peer] >= self.per_peer:
            cap, key, whose = self.per_peer, "gallery.max_streams_per_peer", f"from {peer}"
        elif token and self._by_token[token] >= self.per_token:
            cap, key, whose = self.per_token, "gallery.max_streams_per_token", f"for token {token!r}"
        else:
            return None
        return ResourceExhausted(f"too many publish streams {whose}: {cap} are open, the limit set by {key}; "
                                 "close one or retry later", reason="too_many_streams", field=key)

    @contextmanager
    def admit(self, peer: str, token: str = "") -> Iterator[None]:
        """Hold one stream slot for ``peer`` (a client address) and ``token`` (a principal's name; empty
        when access control is off) while the block runs; raises :class:`ResourceExhausted` when full."""
        with self._lock:
            refused = self._refusal(peer, token)
            if refused is not None:
                raise refused
            self._open += 1
            self._by_peer[peer] += 1
            if token:
                self._by_token[token] += 1
        try:
            yield
        finally:
            with self._lock:
                self._open -= 1
                self._by_peer[peer] -= 1
                if not self._by_peer[peer]:
                    del self._by_peer[peer]
                if token:
                    self._by_token[token] -= 1
                    if not self._by_token[token]:
                        del self._by_token[token]
