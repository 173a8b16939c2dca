"""The operator console's HTTP server (stdlib ``ThreadingHTTPServer``; one page + a JSON API).

Everything it shows comes from three places: the gallery over gRPC (identities, trajectories, search,
forget), Redis (the cameras' anonymized activity tiles and the adversary's audit records) and nothing
else; it never sees raw events. Routes:

    GET  /                         the single-page console (static/index.html)
    GET  /api/cameras              cameras with their current tracks and tile timestamps, and the live
                                   event-to-identity latency (p50 / p95 over the last minute's sightings)
    GET  /api/tile/<camera>.png    the camera's anonymized activity tile
    GET  /api/identities           global identities (?limit=; none or 0: the gallery's gallery.list_limit)
    GET  /api/trajectory/<id>      an identity's camera visits, time-ordered
    GET  /api/search?sighting=ID   query by example from a sighting (&k=; none or 0: gallery.query_k)
    GET  /api/occupancy            identities per camera
    GET  /api/privacy              the adversary's latest verdicts
    POST /api/forget               {"identity_id": ..., "confirm": <the same id>}
    GET  /healthz                  liveness

Access control (``security.tokens_file`` set): every ``/api/`` route needs a bearer token, from an
``Authorization: Bearer`` header or the ``anonreid_token`` cookie, whose role may use the route
(:data:`~anonreid.orchestration.security.roles.CONSOLE_ROUTE_ROLES`): 401 without a valid token, 403
outside the role. Opening any page with ``?token=...`` once sets the cookie (HttpOnly, SameSite=Strict)
and redirects to the same page without the token in its address. The console forwards the caller's
token to the gallery, so the gallery's access log names the operator, not the console. The page, its
static files and ``/healthz`` are public (they hold no data). The gallery channel uses TLS / mutual TLS
from the same ``security`` section.

Before any route, :class:`~anonreid.gallery.console.guard.RequestGuard` checks the ``Host`` of every
request and the ``Origin`` / content type of every write, and refuses writes without access control
off loopback unless ``console.allow_unauthenticated`` (DNS rebinding, cross-site requests). Malformed
input gets 400 with a message, never 500; every connection has a socket timeout
(``console.request_timeout_s``), so a stalled request line, header or body is dropped (408).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import grpc
import redis
from google.protobuf.json_format import MessageToDict

from anonreid.gallery.console.guard import ApiError, RequestGuard, shown, valid_token
from anonreid.gallery.console.tiles import live_latency, read_cameras, read_tile
from anonreid.models.evaluation.privacy_policy import PrivacyPolicy, privacy_status
from anonreid.orchestration.config import Config, SecurityConfig
from anonreid.orchestration.infra.audit_log import AuditLog
from anonreid.orchestration.security.roles import CONSOLE_ROUTE_ROLES, allowed
from anonreid.orchestration.security.tokens import Principal, TokenStore, bearer_token
from anonreid.proto.v1 import gallery_pb2, gallery_pb2_grpc

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")
_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css"}
_GRPC_TO_HTTP = {
    grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED: HTTPStatus.FORBIDDEN,
    grpc.StatusCode.UNAUTHENTICATED: HTTPStatus.UNAUTHORIZED,
    grpc.StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
}


class ConsoleBackend:
    """The console's data access: gRPC to the gallery, Redis for tiles and audit records."""

    def __init__(self, gallery_address: str, redis_client: redis.Redis, cameras: list[str],
                 policy: PrivacyPolicy | None = None, grpc_timeout_s: float = 5.0,
                 security: SecurityConfig | None = None) -> None:
        """``security``: TLS to the gallery, the token file the console checks callers against, and
        ``security.token``, presented to the gallery when a call comes without a caller token."""
        from anonreid.orchestration.security.auth import client_auth, load_tokens
        from anonreid.orchestration.security.tls import open_channel

        self.security = security or SecurityConfig()
        self.tokens: TokenStore | None = load_tokens(self.security)
        self._own_metadata = client_auth(self.security).metadata
        self.channel = open_channel(gallery_address, self.security)
        self.stub = gallery_pb2_grpc.GalleryStub(self.channel)
        self.redis = redis_client
        self.cameras = cameras
        self.policy = policy or PrivacyPolicy.load()
        self.timeout = grpc_timeout_s

    def _call(self, method: Callable[..., Any], request: Any, token: str | None = None) -> dict[str, Any]:
        metadata = (("authorization", f"Bearer {token}"),) if token else self._own_metadata
        try:
            reply = method(request, timeout=self.timeout, metadata=metadata)
        except grpc.RpcError as exc:
            status = _GRPC_TO_HTTP.get(exc.code(), HTTPStatus.BAD_GATEWAY)
            raise ApiError(status, f"gallery: {exc.details() or exc.code().name}") from None
        return MessageToDict(reply, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)

    def cameras_view(self) -> dict[str, Any]:
        known = {c["camera"]: c for c in read_cameras(self.redis)}
        cameras = [known.get(c, {"camera": c, "updated_at": None, "tracks": []}) for c in self.cameras]
        return {"cameras": cameras, "latency": live_latency(cameras)}

    def tile(self, camera: str) -> bytes:
        png = read_tile(self.redis, camera)
        if png is None:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no live tile for camera {camera!r}")
        return png

    def identities(self, limit: int, token: str | None = None) -> dict[str, Any]:
        return self._call(self.stub.ListIdentities, gallery_pb2.ListIdentitiesRequest(limit=limit), token)

    def trajectory(self, identity: str, token: str | None = None) -> dict[str, Any]:
        return self._call(self.stub.GetTrajectory, gallery_pb2.GetTrajectoryRequest(identity_id=identity), token)

    def search(self, sighting: str, k: int, token: str | None = None) -> dict[str, Any]:
        req = gallery_pb2.QueryByExampleRequest(sighting_id=sighting, k=k, exclude_same_camera=False)
        return self._call(self.stub.QueryByExample, req, token)

    def occupancy(self, token: str | None = None) -> dict[str, Any]:
        return self._call(self.stub.Occupancy, gallery_pb2.OccupancyRequest(), token)

    def forget(self, identity: str, reason: str, token: str | None = None) -> dict[str, Any]:
        return self._call(self.stub.Forget, gallery_pb2.ForgetRequest(identity_id=identity, reason=reason), token)

    def authorize(self, route: str, token: str | None) -> Principal | None:
        """The caller of ``route`` (None when access control is off); :class:`ApiError` 401 / 403 else."""
        if self.tokens is None:
            return None
        principal = self.tokens.authenticate(token)
        if principal is None:
            raise ApiError(HTTPStatus.UNAUTHORIZED, "a valid bearer token is required (header, cookie or ?token=)")
        if not allowed(principal.role, CONSOLE_ROUTE_ROLES.get(route, frozenset())):
            raise ApiError(HTTPStatus.FORBIDDEN, f"role {principal.role.value} ({principal.name}) may not use {route}")
        return principal

    def privacy(self) -> dict[str, Any]:
        return privacy_status(AuditLog(self.redis).records(), self.policy, self.cameras)

    def close(self) -> None:
        self.channel.close()


TOKEN_COOKIE = "anonreid_token"
MAX_BODY = 64 * 1024
UINT32_MAX = 2**32 - 1  # the gallery's limit / k fields

_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"^/api/cameras$"), "cameras"),
    ("GET", re.compile(r"^/api/tile/(?P<camera>[\w.-]+)\.png$"), "tile"),
    ("GET", re.compile(r"^/api/identities$"), "identities"),
    ("GET", re.compile(r"^/api/trajectory/(?P<identity>[\w.:-]+)$"), "trajectory"),
    ("GET", re.compile(r"^/api/search$"), "search"),
    ("GET", re.compile(r"^/api/occupancy$"), "occupancy"),
    ("GET", re.compile(r"^/api/privacy$"), "privacy"),
    ("POST", re.compile(r"^/api/forget$"), "forget"),
]


def _handler(backend: ConsoleBackend, guard: RequestGuard, timeout_s: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "anonreid-console"
        timeout = timeout_s  # socket timeout: a stalled request line, header or body is dropped

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("console %s - " + fmt, self.address_string(), *args)

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: HTTPStatus, payload: Any) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json")

        def _token(self) -> str | None:
            token = bearer_token(self.headers.get("Authorization"))
            if token:
                return token
            for part in (self.headers.get("Cookie") or "").split(";"):
                name, _, value = part.strip().partition("=")
                if name == TOKEN_COOKIE and value:
                    return value
            return None

        def _set_cookie_from_query(self, url: Any) -> bool:
            """``?token=`` on a GET: store it in the cookie and redirect without it (True when done)."""
            query = parse_qs(url.query)
            token = query.pop("token", [""])[0]
            if not token:
                return False
            if not valid_token(token):  # never echo request data into a header
                raise ApiError(HTTPStatus.BAD_REQUEST, "the token in ?token= holds characters no token has")
            if backend.tokens is not None and backend.tokens.authenticate(token) is None:
                raise ApiError(HTTPStatus.UNAUTHORIZED, "the token in ?token= is not valid")
            self.send_response(HTTPStatus.SEE_OTHER)
            self.send_header("Set-Cookie", f"{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/")
            rest = urlencode(query, doseq=True)
            self.send_header("Location", url.path + (f"?{rest}" if rest else ""))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True

        def _dispatch(self, method: str) -> None:
            url = urlparse(self.path)
            try:
                headers = self.headers
                guard.check_host(headers.get("Host"))
                if method == "POST":
                    guard.check_write(headers.get("Host"), headers.get("Origin"), headers.get("Sec-Fetch-Site"),
                                      headers.get("Content-Type"))
                if method == "GET" and self._set_cookie_from_query(url):
                    return None
                if method == "GET" and (url.path in ("/", "/index.html") or url.path.startswith("/static/")):
                    return self._static(url.path)
                if url.path == "/healthz":
                    return self._json(HTTPStatus.OK, {"status": "ok"})
                for m, pattern, name in _ROUTES:
                    match = pattern.match(url.path)
                    if match and m == method:
                        return self._api(name, match.groupdict(), parse_qs(url.query))
                raise ApiError(HTTPStatus.NOT_FOUND, f"no route {method} {url.path}")
            except ApiError as exc:
                self._json(exc.status, {"error": str(exc)})
            except Exception:  # a console bug must not take the server down; log it, answer 500
                log.exception("console error on %s %s", method, self.path)
                self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})

        def _static(self, path: str) -> None:
            name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/static/")
            file = (STATIC / name).resolve()
            if STATIC.resolve() not in file.parents or not file.is_file():
                raise ApiError(HTTPStatus.NOT_FOUND, f"no such file {path}")
            self._send(HTTPStatus.OK, file.read_bytes(), _CONTENT_TYPES.get(file.suffix, "application/octet-stream"))

        def _api(self, name: str, params: dict[str, str], query: dict[str, list[str]]) -> None:
            def q(key: str, default: str = "") -> str:
                return query.get(key, [default])[0]

            token = self._token()
            backend.authorize(name, token)

            if name == "cameras":
                return self._json(HTTPStatus.OK, backend.cameras_view())
            if name == "tile":
                return self._send(HTTPStatus.OK, backend.tile(params["camera"]), "image/png")
            if name == "identities":
                return self._json(HTTPStatus.OK, backend.identities(_int(q("limit", "0"), "limit", UINT32_MAX),
                                                                    token))
            if name == "trajectory":
                return self._json(HTTPStatus.OK, backend.trajectory(params["identity"], token))
            if name == "search":
                if not q("sighting"):
                    raise ApiError(HTTPStatus.BAD_REQUEST, "query parameter 'sighting' is required")
                k = _int(q("k", "0"), "k", UINT32_MAX)
                return self._json(HTTPStatus.OK, backend.search(q("sighting"), k, token))
            if name == "occupancy":
                return self._json(HTTPStatus.OK, backend.occupancy(token))
            if name == "privacy":
                return self._json(HTTPStatus.OK, backend.privacy())
            if name == "forget":
                body = self._body()
                identity, reason = _text(body, "identity_id", ""), _text(body, "reason", "console")
                if not identity or body.get("confirm") != identity:
                    raise ApiError(HTTPStatus.BAD_REQUEST,
                                   "forget needs 'identity_id' and 'confirm' set to the same identity id")
                return self._json(HTTPStatus.OK, backend.forget(identity, reason, token))
            raise ApiError(HTTPStatus.NOT_FOUND, name)

        def _body(self) -> dict[str, Any]:
            text = self.headers.get("Content-Length", "0").strip()
            if not text.isdigit() or not text.isascii():
                self.close_connection = True
                raise ApiError(HTTPStatus.BAD_REQUEST, f"Content-Length must be a byte count, got {shown(text)}")
            length = int(text) if len(text) <= 12 else MAX_BODY + 1
            if length > MAX_BODY:
                self.close_connection = True
                raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request body over {MAX_BODY // 1024} KiB")
            try:
                data = self.rfile.read(length)
            except TimeoutError:
                self.close_connection = True
                raise ApiError(HTTPStatus.REQUEST_TIMEOUT,
                               f"request body not received within {self.timeout:g} s") from None
            if len(data) < length:
                raise ApiError(HTTPStatus.BAD_REQUEST, f"request body ended after {len(data)} of {length} bytes")
            try:
                body = json.loads(data.decode("utf-8") or "{}")
            except UnicodeDecodeError as exc:
                raise ApiError(HTTPStatus.BAD_REQUEST, f"request body is not UTF-8 (byte {exc.start})") from None
            except RecursionError:
                raise ApiError(HTTPStatus.BAD_REQUEST, "request body is JSON nested too deeply") from None
            except ValueError as exc:  # JSONDecodeError, and integers over Python's digit limit
                raise ApiError(HTTPStatus.BAD_REQUEST, f"request body is not JSON: {exc}") from None
            if not isinstance(body, dict):
                raise ApiError(HTTPStatus.BAD_REQUEST, "request body must be a JSON object")
            return body

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

    return Handler


def _int(text: str, name: str, maximum: int) -> int:
    """Query parameter ``name``: a decimal integer in 0..maximum (400 otherwise)."""
    value = int(text) if text.isdigit() and text.isascii() and len(text) <= 20 else -1
    if not 0 <= value <= maximum:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"{name} must be an integer in 0..{maximum}, got {shown(text)}")
    return value


def _text(body: dict[str, Any], key: str, default: str, max_len: int = 1024) -> str:
    """String field ``key`` of a JSON body (400 when it is another type or longer than ``max_len``)."""
    value = body.get(key, default)
    if not isinstance(value, str) or len(value) > max_len:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"'{key}' must be a string of at most {max_len} characters")
    return value


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # listen backlog (5 by default: a burst of browser connections waited for SYN retries)


class ConsoleServer:
    """Serve the console on ``host:port`` (port 0 picks a free one) in a background thread.

    ``allowed_hosts``, ``allow_unauthenticated``: see :class:`~anonreid.gallery.console.guard.RequestGuard`;
    ``request_timeout_s``: the socket timeout of every connection."""

    def __init__(self, backend: ConsoleBackend, host: str = "127.0.0.1", port: int = 8080, *,
                 allowed_hosts: Iterable[str] = (), allow_unauthenticated: bool = False,
                 request_timeout_s: float = 10.0) -> None:
        self.backend = backend
        guard = RequestGuard(host, allowed_hosts, allow_unauthenticated, access_control=backend.tokens is not None)
        self.httpd = _HTTPServer((host, port), _handler(backend, guard, request_timeout_s))
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="console", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ConsoleServer:
        self._thread.start()
        log.info("console at %s", self.url)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.backend.close()


def start_console(cfg: Config, gallery_address: str, redis_url: str, redis_password: str | None = None
                  ) -> ConsoleServer | None:
    """Start the console described by ``cfg.console`` (None when disabled)."""
    if not cfg.console.enabled:
        return None
    from anonreid.orchestration.redis_service import connect

    backend = ConsoleBackend(gallery_address, connect(redis_url, redis_password), list(cfg.gallery.camera_ids),
                             policy=PrivacyPolicy.load(cfg.adversary.policy or None), security=cfg.security)
    c = cfg.console
    return ConsoleServer(backend, c.host, c.port, allowed_hosts=c.allowed_hosts,
                         allow_unauthenticated=c.allow_unauthenticated, request_timeout_s=c.request_timeout_s).start()
