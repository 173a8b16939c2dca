"""What every console request must satisfy before a route runs, and the console's HTTP errors.

With access control off (the default) anyone who can make the operator's browser send a request could
otherwise drive the console: a page on another site posting ``text/plain`` (a "simple" request, sent
without a CORS preflight), or a page whose DNS name is rebound to 127.0.0.1 (the same origin for the
browser, a foreign ``Host`` for the console). So:

- every request must name, in its ``Host`` header, a host the console answers to: the configured
  ``console.allowed_hosts``, the bind address, and on a loopback bind ``localhost`` / 127.0.0.1 / ::1;
  on a wildcard bind (0.0.0.0, ::) also any IP literal (an address cannot be DNS-rebound);
- every write (POST) must come from the console's own page: an ``Origin``, when sent, equal to
  ``http(s)://<Host>`` (or naming a configured host), ``Sec-Fetch-Site`` same-origin when sent, and a JSON
  body (``Content-Type: application/json``, which a cross-site page cannot send without a preflight the
  console never grants);
- writes without access control (no ``security.tokens_file``) are served only on a loopback bind, or
  when the operator sets ``console.allow_unauthenticated``;
- a ``?token=`` stored in a cookie must look like a token (never echo request data into a header).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from http import HTTPStatus
from urllib.parse import urlsplit

__all__ = ["ApiError", "RequestGuard", "valid_token"]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})
_HOST_HEADER = re.compile(r"^[A-Za-z0-9._~\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
# tokens are URL-safe base64 (``anonreid tokens create``); allow the base64 and URL-safe alphabets only
_TOKEN = re.compile(r"^[A-Za-z0-9._~+/=-]{1,512}$")


class ApiError(Exception):
    """An HTTP error answer: ``status`` and a message for the JSON body."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def valid_token(token: str) -> bool:
    """True when ``token`` may go into a cookie: the token alphabet only, no separators or controls."""
    return bool(_TOKEN.match(token))


def shown(value: str, limit: int = 60) -> str:
    """``value`` quoted for an error message, cut to ``limit`` characters."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class RequestGuard:
    """The Host / Origin / content-type / unauthenticated-write checks of one console server."""

    def __init__(self, bind_host: str, allowed_hosts: Iterable[str] = (), allow_unauthenticated: bool = False,
                 access_control: bool = False) -> None:
        bind = bind_host.strip("[]").lower()
        self.wildcard = bind in WILDCARD_BINDS
        self.loopback = bind == "localhost" or (_is_ip(bind) and ipaddress.ip_address(bind).is_loopback)
        self.configured = frozenset(h.strip("[]").lower().rstrip(".") for h in allowed_hosts if h)
        names = set(self.configured)
        if not self.wildcard:
            names.add(bind)
        if self.loopback or self.wildcard:
            names |= LOOPBACK_NAMES
        self.names = frozenset(names)
        self.allow_unauthenticated = allow_unauthenticated
        self.access_control = access_control

    def host_allowed(self, hostname: str) -> bool:
        name = hostname.strip("[]").lower().rstrip(".")
        return name in self.names or (self.wildcard and _is_ip(name))

    def check_host(self, host: str | None) -> None:
        """The request's ``Host`` header names this console (403 otherwise, 400 when missing or malformed)."""
        if not host:
            raise ApiError(HTTPStatus.BAD_REQUEST, "a Host header is required")
        if not _HOST_HEADER.match(host):
            raise ApiError(HTTPStatus.BAD_REQUEST, f"malformed Host header {shown(host)}")
        hostname = urlsplit("//" + host).hostname or ""
        if not self.host_allowed(hostname):
            raise ApiError(HTTPStatus.FORBIDDEN, f"this console does not answer to host {shown(hostname)}; "
                           "add the name the operators use to console.allowed_hosts")

    def check_write(self, host: str | None, origin: str | None, fetch_site: str | None,
                    content_type: str | None) -> None:
        """A state-changing request (its ``Host``, ``Origin``, ``Sec-Fetch-Site`` and ``Content-Type``
        headers): same-origin, JSON, and access control on (or explicitly waived)."""
        host = host or ""
        if origin is not None:
            parts = urlsplit(origin)
            same = parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()
            named = parts.scheme in ("http", "https") and (parts.hostname or "") in self.configured
            if not (same or named):
                raise ApiError(HTTPStatus.FORBIDDEN,
                               f"cross-origin write refused: Origin {shown(origin)} is not this console")
        if fetch_site is not None and fetch_site not in ("same-origin", "none"):
            raise ApiError(HTTPStatus.FORBIDDEN, f"cross-site write refused (Sec-Fetch-Site: {shown(fetch_site)})")
        kind = (content_type or "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                           f"a write needs Content-Type: application/json, got {shown(kind or '(none)')}")
        if not (self.access_control or self.loopback or self.allow_unauthenticated):
            raise ApiError(HTTPStatus.FORBIDDEN,
                           "writes without access control are served only on a loopback bind: set "
                           "security.tokens_file (or, knowingly, console.allow_unauthenticated=true)")
