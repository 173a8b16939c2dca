"""The console against hostile requests, on real `anonreid gallery serve` processes (issue #17, items 4, 5, 10):
cross-site and DNS-rebinding writes, header injection through ?token=, malformed input answered 400 (not
500), and stalled request bodies dropped within the socket timeout while the console keeps serving."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gallery_process import GalleryProcess

from anonreid.gallery.client import GalleryClient, GalleryClientError
from anonreid.gallery.synthetic import noisy, prototypes, sighting

S = 1_000_000
TIMEOUT_S = 1.0  # console.request_timeout_s of the served console


@dataclass
class Served:
    address: str  # gRPC host:port
    port: int  # console port (connect on 127.0.0.1)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        """One request with exactly ``headers`` (``Host`` included: http.client then sends no other)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers={"Host": f"127.0.0.1:{self.port}", **(headers or {})})
            resp = conn.getresponse()
            raw = resp.read()
            kind = resp.getheader("Content-Type") or ""
            return resp.status, dict(resp.getheaders()), json.loads(raw) if kind == "application/json" else raw
        finally:
            conn.close()

    def raw(self, data: bytes, wait_s: float = 10.0) -> bytes:
        """Send ``data`` on a fresh connection and read until the console closes it."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=wait_s) as sock:
            sock.sendall(data)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def identity_exists(self, identity: str) -> bool:
        with GalleryClient(self.address, retry_timeout_s=5) as client:
            try:
                client.trajectory(identity)
            except GalleryClientError as exc:
                if exc.code.name == "NOT_FOUND":
                    return False
                raise
        return True


@contextmanager
def gallery_serve(*runs: tuple[Path, list[str]]) -> Iterator[list[Served]]:
    """One `anonreid gallery serve` with its console per (data folder, --set overrides), on free ports,
    started and stopped (SIGTERM) together: a gallery takes seconds to stop."""
    procs: list[GalleryProcess] = []
    try:
        for tmp, overrides in runs:
            tmp.mkdir(parents=True, exist_ok=True)
            procs.append(GalleryProcess(tmp / "redis", tmp / "gallery.log", console=True, overrides=overrides))
        served = []
        for proc in procs:
            proc.wait_serving(60)
            assert proc.console_port, proc.output()[-3000:]
            served.append(Served(proc.address, proc.console_port))
        yield served
    finally:
        for proc in procs:
            try:
                proc.terminate(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _publish(address: str, seed: int) -> str:
    """One identity (two cameras) in the gallery; returns its id."""
    rng = np.random.default_rng(seed)
    (p,) = prototypes(1, 256, rng)
    with GalleryClient(address) as client:
        acks = client.publish([sighting(f"s{seed}a", "cam1", f"t{seed}", 0, 2 * S, noisy(p, 0.2, rng)),
                               sighting(f"s{seed}b", "cam2", f"t{seed}", 10 * S, 12 * S, noisy(p, 0.2, rng))])
    return str(acks[0].identity_id)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The default console: bound to 127.0.0.1, no access control (a local operator's `gallery serve`)."""
    with gallery_serve((tmp_path_factory.mktemp("console"), [f"console.request_timeout_s={TIMEOUT_S}"])) as (srv,):
        yield srv


def _forget_body(identity: str) -> bytes:
    return json.dumps({"identity_id": identity, "confirm": identity}).encode()


# ---------------------------------------------------------------- item 4: cross-site requests, DNS rebinding

def test_cross_site_and_rebound_requests_are_refused(served: Served) -> None:
    victim, other = _publish(served.address, 1), _publish(served.address, 2)
    assert victim != other
    own = f"http://127.0.0.1:{served.port}"
    attacks = {  # what a foreign page can make the operator's browser send, and what a rebound name sends
        "text/plain, foreign Origin and Host": ({"Content-Type": "text/plain", "Origin": "http://evil.example",
                                                 "Host": f"evil.example:{served.port}"}, 403),
        "rebound name, same-origin for the browser": ({"Content-Type": "application/json",
                                                       "Origin": f"http://evil.example:{served.port}",
                                                       "Host": f"evil.example:{served.port}"}, 403),
        "foreign Origin, our Host": ({"Content-Type": "application/json", "Origin": "http://evil.example"}, 403),
        "foreign Origin on our own IP": ({"Content-Type": "application/json", "Origin": "http://127.0.0.1:1"}, 403),
        "Origin null": ({"Content-Type": "application/json", "Origin": "null"}, 403),
        "cross-site fetch metadata": ({"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403),
        "form post, no Origin": ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
        "text/plain, same Origin": ({"Content-Type": "text/plain", "Origin": own}, 415),
    }
    for name, (headers, status) in attacks.items():
        got, _, body = served.request("POST", "/api/forget", _forget_body(victim), headers)
        assert (got, name) == (status, name), body
        assert body["error"], name
    # a rebound name cannot read either
    status, _, body = served.request("GET", "/api/identities", headers={"Host": f"attacker.example:{served.port}"})
    assert status == 403 and "console.allowed_hosts" in body["error"]
    assert served.identity_exists(victim)
    # the console's own page (same origin, JSON) still forgets, by any loopback name
    for host in (f"localhost:{served.port}", f"127.0.0.1:{served.port}"):
        status, _, listing = served.request("GET", "/api/identities", headers={"Host": host})
        assert status == 200 and {victim, other} <= {i["identity_id"] for i in listing["identities"]}
    status, _, body = served.request("POST", "/api/forget", _forget_body(other),
                                     {"Content-Type": "application/json", "Origin": own, "Sec-Fetch-Site": "same-origin"})
    assert status == 200, body
    assert not served.identity_exists(other) and served.identity_exists(victim)


def test_unauthenticated_writes_need_a_loopback_bind_or_the_flag(tmp_path: Path) -> None:
    """Bound to every interface without tokens, the console still serves reads but refuses forget, unless
    the operator sets console.allow_unauthenticated; an IP-literal Host is accepted on such a bind."""
    json_post = {"Content-Type": "application/json"}
    everywhere = "console.host=0.0.0.0"
    with gallery_serve((tmp_path / "a", [everywhere]),
                       (tmp_path / "b", [everywhere, "console.allow_unauthenticated=true",
                                         "console.allowed_hosts=[console.example]"])) as (refusing, waived):
        ident = _publish(refusing.address, 3)
        assert refusing.request("GET", "/api/identities")[0] == 200
        status, _, body = refusing.request("POST", "/api/forget", _forget_body(ident), json_post)
        assert status == 403 and "console.allow_unauthenticated" in body["error"], body
        assert refusing.identity_exists(ident)
        assert refusing.request("GET", "/healthz", headers={"Host": "rebound.example"})[0] == 403
        ident = _publish(waived.address, 4)
        status, _, body = waived.request("POST", "/api/forget", _forget_body(ident),
                                         {**json_post, "Host": "console.example", "Origin": "https://console.example"})
        assert status == 200, body
        assert not waived.identity_exists(ident)


# ---------------------------------------------------------------- item 5: header injection

def test_token_in_the_query_never_injects_a_header(served: Served) -> None:
    host = f"Host: 127.0.0.1:{served.port}\r\n".encode()
    reply = served.raw(b"GET /?token=abc%0d%0aX-Injected:%20yes HTTP/1.1\r\n" + host + b"Connection: close\r\n\r\n")
    head = reply.split(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.0 400"), head
    assert b"x-injected" not in head.lower() and b"set-cookie" not in head.lower(), head
    # a well-formed token is stored in the cookie, the address cleaned of it
    status, headers, _ = served.request("GET", "/?token=Ab-_9.x~&view=1")
    assert status == 303
    assert headers["Set-Cookie"] == "anonreid_token=Ab-_9.x~; HttpOnly; SameSite=Strict; Path=/"
    assert headers["Location"] == "/?view=1"


# ---------------------------------------------------------------- item 10: 400 on bad input, stalled bodies

BAD_QUERIES = {
    "/api/identities?limit=-1": "limit",
    "/api/identities?limit=" + "9" * 60_000: "limit",
    "/api/identities?limit=" + str(10**30): "limit",
    "/api/identities?limit=99999999999999": "limit",
    "/api/search?sighting=s1a&k=1e30": "k",
    "/api/search?sighting=s1a&k=" + str(10**30): "k",
    "/api/search?sighting=s1a&k=-1": "k",
}
BAD_BODIES = {
    "invalid UTF-8": (b'{"identity_id": "id-\xff\xfe", "confirm": "x"}', "UTF-8"),
    "60,000-digit integer": (b'{"identity_id": ' + b"9" * 60_000 + b"}", "JSON"),
    "deeply nested JSON": (b"[" * 30_000 + b"]" * 30_000, "nested"),
    "not an object": (b"[1, 2]", "object"),
    "identity id not a string": (b'{"identity_id": 5, "confirm": 5}', "identity_id"),
    "reason not a string": (b'{"identity_id": "a", "confirm": "a", "reason": {}}', "reason"),
}


def test_malformed_requests_get_400_with_a_message(served: Served) -> None:
    for path, field in BAD_QUERIES.items():
        status, _, body = served.request("GET", path)
        assert (status, path[:60]) == (400, path[:60]), body
        assert field in body["error"] and len(body["error"]) < 300, body
    for name, (data, says) in BAD_BODIES.items():
        status, _, body = served.request("POST", "/api/forget", data, {"Content-Type": "application/json"})
        assert (status, name) == (400, name), body
        assert says in body["error"], (name, body)
    for length, status in {"-1": b"400", "abc": b"400", "+2": b"400", "1" * 40: b"413"}.items():
        reply = served.raw(f"POST /api/forget HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n"
                           f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{}}".encode(), wait_s=5)
        assert reply.startswith(b"HTTP/1.0 " + status), (length, reply)


def test_stalled_requests_are_dropped_and_the_console_keeps_serving(served: Served) -> None:
    headers = (f"POST /api/forget HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\nContent-Type: application/json\r\n"
               "Content-Length: 100\r\n\r\n{").encode()
    start = time.monotonic()
    stalled = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(8)]
    quiet = socket.create_connection(("127.0.0.1", served.port))  # never sends a request line
    try:
        for sock in stalled:
            sock.sendall(headers)
        assert served.request("GET", "/healthz")[0] == 200  # served while eight bodies stall
        for sock in [*stalled, quiet]:
            sock.settimeout(TIMEOUT_S + 5)
            reply = b""
            while chunk := sock.recv(65536):  # the console answers and closes; a hang raises TimeoutError
                reply += chunk
            assert sock is quiet or reply.startswith(b"HTTP/1.0 408"), reply
        assert time.monotonic() - start < TIMEOUT_S + 4
    finally:
        for sock in [*stalled, quiet]:
            sock.close()
    assert served.request("GET", "/healthz")[0] == 200
