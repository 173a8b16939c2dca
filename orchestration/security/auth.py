"""Access control for gRPC servers and the credentials their clients present.

Server side, :class:`AuthInterceptor` checks every RPC: health checks and reflection are public; every
other method needs an ``authorization: Bearer <token>`` metadata entry whose token is in the
:class:`~anonreid.orchestration.security.tokens.TokenStore` (else UNAUTHENTICATED) and whose role may
call the method (:func:`~anonreid.orchestration.security.roles.method_allowed`, deny by default; else
PERMISSION_DENIED). The caller's :class:`Principal` is available to the handler through
:func:`current_principal`, an optional ``audit`` hook sees each allowed call with its request and
response (the gallery records operator queries there), and an optional ``denied`` hook each refused
one (the gallery records those too).

Client side, :func:`client_auth` turns a :class:`SecurityConfig` into the TLS channel credentials and
the bearer metadata every client of this project passes to its stub.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from anonreid.orchestration.config import SecurityConfig
from anonreid.orchestration.security.roles import PUBLIC_METHOD_PREFIXES, Role, method_allowed
from anonreid.orchestration.security.tokens import Principal, TokenStore, bearer_token

log = logging.getLogger(__name__)

#: the principal of the RPC being served in this thread (None outside an authenticated call)
_PRINCIPAL: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("anonreid_principal", default=None)

#: what the audit hook receives: principal, full method name, request (a message or, for streamed
#: requests, None), response (a message, or None for streamed responses)
#: the caller when access control is off (no tokens file)
ANONYMOUS = Principal("anonymous", Role.ADMIN)

AuditHook = Callable[[Principal, str, Any, Any], None]

#: what the denial hook receives: the principal (None when unauthenticated), full method name, status
#: code name (UNAUTHENTICATED, PERMISSION_DENIED), why, and the caller's peer address
DeniedHook = Callable[[Principal | None, str, str, str, str], None]


def current_principal() -> Principal | None:
    """Who is calling, inside a handler served behind :class:`AuthInterceptor`."""
    return _PRINCIPAL.get()


class AuthInterceptor(grpc.ServerInterceptor):
    """Authenticate by bearer token, authorise by role, expose the principal, audit (module docstring)."""

    def __init__(self, tokens: TokenStore | None, audit: AuditHook | None = None,
                 denied: DeniedHook | None = None) -> None:
        """``tokens`` None turns access control off (every caller is :data:`ANONYMOUS`, an admin) but
        keeps the principal and the audit hook, so the access log is written either way."""
        self.tokens = tokens
        self.audit = audit
        self.denied = denied

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        method = handler_call_details.method
        handler = continuation(handler_call_details)
        if handler is None or method.startswith(PUBLIC_METHOD_PREFIXES):
            return handler
        if self.tokens is None:
            return self._as(ANONYMOUS, method, handler)
        header = next((v for k, v in handler_call_details.invocation_metadata or () if k == "authorization"), None)
        principal = self.tokens.authenticate(bearer_token(header if isinstance(header, str) else None))
        if principal is None:
            why = "no bearer token" if header is None else "unknown or malformed bearer token"
            return self._refuse(handler, None, method, grpc.StatusCode.UNAUTHENTICATED, f"{method}: {why}")
        if not method_allowed(principal.role, method):
            return self._refuse(handler, principal, method, grpc.StatusCode.PERMISSION_DENIED,
                                f"{method}: role {principal.role.value} ({principal.name}) may not call it")
        return self._as(principal, method, handler)

    def _refuse(self, handler: Any, principal: Principal | None, method: str, code: grpc.StatusCode,
                message: str) -> Any:
        """The handler, its behaviour replaced by one ending the call with ``code`` (same RPC shape),
        after telling the ``denied`` hook."""

        def deny(request: Any, context: grpc.ServicerContext) -> Any:
            log.info("refused %s from %s", message, context.peer())
            if self.denied is not None:
                try:
                    self.denied(principal, method, code.name, message, context.peer())
                except Exception:  # the refusal stands even when it cannot be recorded
                    log.exception("recording the refusal of %s failed", method)
            context.abort(code, message)

        for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            if getattr(handler, kind) is not None:
                return handler._replace(**{kind: deny})
        return handler

    def _record(self, principal: Principal, method: str, request: Any, response: Any) -> None:
        if self.audit is None:
            return
        try:
            self.audit(principal, method, request, response)
        except Exception:  # an audit failure is logged loudly but does not fail the operator's call
            log.exception("access audit of %s by %s failed", method, principal.name)

    def _as(self, principal: Principal, method: str, handler: Any) -> Any:
        """The handler with the principal set while it runs (and the call audited once it answered)."""
        kind = next(k for k in ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
                    if getattr(handler, k) is not None)
        inner_any = getattr(handler, kind)

        if kind in ("unary_unary", "stream_unary"):  # one response: audit it with the (unary) request
            def single(request: Any, context: Any) -> Any:
                token = _PRINCIPAL.set(principal)
                try:
                    response = inner_any(request, context)
                finally:
                    _PRINCIPAL.reset(token)
                self._record(principal, method, request if kind == "unary_unary" else None, response)
                return response

            return handler._replace(**{kind: single})

        def streaming(request: Any, context: Any) -> Iterator[Any]:
            token = _PRINCIPAL.set(principal)
            try:
                yield from inner_any(request, context)
            finally:
                _PRINCIPAL.reset(token)
            self._record(principal, method, request if kind == "unary_stream" else None, None)

        return handler._replace(**{kind: streaming})


def load_tokens(cfg: SecurityConfig) -> TokenStore | None:
    """The token store of ``security.tokens_file``; None when access control is off (no file set)."""
    return TokenStore.load(cfg.tokens_file) if cfg.tokens_file else None


@dataclass(frozen=True)
class ClientAuth:
    """What a gRPC client of this project presents: TLS credentials (None = plain text) and metadata."""

    credentials: grpc.ChannelCredentials | None
    metadata: tuple[tuple[str, str], ...]


def client_auth(cfg: SecurityConfig | None, token: str | None = None) -> ClientAuth:
    """Channel credentials and ``authorization`` metadata from ``cfg`` (``token`` overrides
    ``cfg.token``); plain text without a token when ``cfg`` is None."""
    from anonreid.orchestration.security.tls import channel_credentials

    if cfg is None:
        return ClientAuth(None, ())
    token = token if token is not None else cfg.token
    return ClientAuth(channel_credentials(cfg), (("authorization", f"Bearer {token}"),) if token else ())
