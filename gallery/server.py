"""The gallery's gRPC server: one interceptor for errors and metrics, health, reflection, graceful stop.

The interceptor is the single place where

- domain exceptions become status codes (:data:`STATUS_FOR`), with the reason, field and sighting id
  in trailing metadata (``anonreid-reason``, ``anonreid-field``, ``anonreid-sighting-id-bin``) so that
  a client can tell which sighting of a stream was refused;
- anything unexpected becomes INTERNAL with a generic message (the traceback goes to the log, never
  to the peer);
- malformed protobuf becomes INVALID_ARGUMENT (request deserializers are wrapped: grpc would otherwise
  answer INTERNAL);
- every RPC is counted and timed (``anonreid_grpc_requests_total``, ``..._request_latency_seconds``).

The server is grpc's thread-pool server: the gallery core is synchronous and serialised by one lock,
so an asyncio server would only add a hop to an executor. Each open Publish stream holds a pool thread,
so the pool has ``max_workers + publish_streams`` threads and the servicer admits at most
``publish_streams`` streams (:mod:`anonreid.gallery.streams`): ``max_workers`` threads are always left
for health checks, reflection and operator queries, however many cameras publish or hold streams open.
(The asyncio server would need every interceptor, the servicer and the extra-interceptor API rewritten
for ``grpc.aio``; reserving threads is the smaller change with the same guarantee.) HTTP/2 keepalive
pings every connection (``keepalive_time_s``) and drops one that does not answer, which ends the
streams of a vanished camera.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from anonreid.gallery.errors import (
    GalleryError,
    IdleTimeout,
    InvalidInput,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from anonreid.gallery.metrics import GalleryMetrics
from anonreid.proto.v1 import gallery_pb2, gallery_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = gallery_pb2.DESCRIPTOR.services_by_name["Gallery"].full_name  # anonreid.v1.Gallery
STATUS_FOR: dict[type[GalleryError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    IdleTimeout: grpc.StatusCode.DEADLINE_EXCEEDED,
}
INTERNAL_MESSAGE = "internal error in the gallery (see its log)"


@dataclass(frozen=True)
class _Malformed:
    """What a wrapped deserializer returns for bytes that do not parse (so the handler can refuse them)."""

    error: str


def _safe_deserializer(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:
            return _Malformed(f"{type(exc).__name__}: {exc}")

    return parse


def _code_of(exc: BaseException) -> grpc.StatusCode:
    """The status code for an exception: by domain class, INTERNAL for anything else."""
    for cls in type(exc).__mro__:
        if cls in STATUS_FOR:
            return STATUS_FOR[cls]  # type: ignore[index]
    return grpc.StatusCode.INTERNAL


class ErrorAndMetricsInterceptor(grpc.ServerInterceptor):
    """Maps exceptions to status codes and records every RPC (see the module docstring)."""

    def __init__(self, metrics: GalleryMetrics) -> None:
        self.metrics = metrics

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        parse = _safe_deserializer(handler.request_deserializer)
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=self._unary(method, handler.unary_unary), request_deserializer=parse)
        if handler.unary_stream is not None:
            return handler._replace(unary_stream=self._streaming(method, handler.unary_stream, False),
                                    request_deserializer=parse)
        if handler.stream_unary is not None:
            return handler._replace(stream_unary=self._unary(method, handler.stream_unary, True),
                                    request_deserializer=parse)
        return handler._replace(stream_stream=self._streaming(method, handler.stream_stream, True),
                                request_deserializer=parse)

    # -- helpers --------------------------------------------------------------------------------
    def _abort(self, context: grpc.ServicerContext, exc: BaseException) -> None:
        """End the call with the status for ``exc`` (``context.abort`` raises)."""
        code = _code_of(exc)
        if isinstance(exc, GalleryError):
            message = exc.message
            context.set_trailing_metadata((
                ("anonreid-reason", exc.reason),
                ("anonreid-field", exc.field),
                ("anonreid-sighting-id-bin", exc.sighting_id.encode()),
            ))
        else:
            log.error("unexpected error serving %s", context.peer(), exc_info=exc)
            message = INTERNAL_MESSAGE
        context.abort(code, message)

    def _request(self, request: Any) -> Any:
        if isinstance(request, _Malformed):
            self.metrics.record_rejected("malformed")
            raise InvalidInput(f"malformed request message ({request.error})", reason="malformed")
        return request

    def _requests(self, requests: Iterator[Any]) -> Iterator[Any]:
        for request in requests:
            yield self._request(request)

    @staticmethod
    def _already_aborted(context: grpc.ServicerContext) -> str | None:
        """The status name when the handler aborted the call itself (then its exception propagates)."""
        code = context.code()
        return code.name if isinstance(code, grpc.StatusCode) and code != grpc.StatusCode.OK else None

    @contextmanager
    def _handled(self, method: str, context: grpc.ServicerContext) -> Iterator[None]:
        """Time and count one RPC; turn an exception into its status (see the module docstring)."""
        t0, code = time.perf_counter(), "OK"
        try:
            yield
        except GeneratorExit:  # the peer went away in the middle of a stream
            code = "CANCELLED"
            raise
        except Exception as exc:
            aborted = self._already_aborted(context)
            if aborted is not None:
                code = aborted
                raise
            code = _code_of(exc).name
            self._abort(context, exc)
        finally:
            self.metrics.record_rpc(method, code, time.perf_counter() - t0)

    def _unary(self, method: str, behavior: Callable[..., Any], streaming_request: bool = False
               ) -> Callable[[Any, grpc.ServicerContext], Any]:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            with self._handled(method, context):
                return behavior(self._requests(request) if streaming_request else self._request(request), context)

        return handle

    def _streaming(self, method: str, behavior: Callable[..., Iterator[Any]], streaming_request: bool
                   ) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
        def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            with self._handled(method, context):
                yield from behavior(self._requests(request) if streaming_request else self._request(request), context)

        return handle


class GrpcServer:
    """A grpc server hosting the gallery servicer, health checking and reflection."""

    def __init__(self, servicer: gallery_pb2_grpc.GalleryServicer, metrics: GalleryMetrics, *,
                 host: str = "127.0.0.1", port: int = 0, max_message_bytes: int = 4 * 1024 * 1024,
                 max_workers: int = 16, publish_streams: int = 0, grace_s: float = 5.0,
                 keepalive_time_s: float = 60.0, keepalive_timeout_s: float = 20.0,
                 interceptors: Sequence[grpc.ServerInterceptor] = (),
                 credentials: grpc.ServerCredentials | None = None) -> None:
        """``publish_streams``: threads added for the streams the servicer admits (module docstring);
        ``interceptors`` run inside the error/metrics one (e.g. access control raising
        PermissionDenied); ``credentials`` serve TLS instead of plain text."""
        self.grace_s = grace_s
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers + publish_streams, thread_name_prefix="gallery-grpc"),
            interceptors=[ErrorAndMetricsInterceptor(metrics), *interceptors],
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.so_reuseport", 0),  # a second gallery on the same port must fail, not share it
                ("grpc.keepalive_time_ms", round(keepalive_time_s * 1000)),
                ("grpc.keepalive_timeout_ms", round(keepalive_timeout_s * 1000)),
                ("grpc.http2.ping_timeout_ms", round(keepalive_timeout_s * 1000)),  # else 60 s (grpc >= 1.6x)
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.max_pings_without_data", 0),  # keep pinging a connection whose streams are idle
                # clients may ping this often (GalleryClient pings every CLIENT_KEEPALIVE_S during calls)
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ],
            # beyond this many RPCs in flight or queued, grpc answers RESOURCE_EXHAUSTED at once
            maximum_concurrent_rpcs=publish_streams + max_workers * 4,
        )
        gallery_pb2_grpc.add_GalleryServicer_to_server(servicer, self.server)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self.server)
        try:
            target = f"{host}:{port}"
            self.port = (self.server.add_secure_port(target, credentials) if credentials is not None
                         else self.server.add_insecure_port(target))
        except RuntimeError as exc:
            self.port = 0
            cause: Exception | None = exc
        else:
            cause = None
        if self.port == 0:
            raise OSError(f"cannot bind the gallery gRPC server to {host}:{port} (address in use?)") from cause
        self.address = f"{host}:{self.port}"

    def start(self) -> str:
        self.server.start()
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("gallery gRPC server listening on %s", self.address)
        return self.address

    def stop(self, grace_s: float | None = None) -> None:
        """Report NOT_SERVING, refuse new RPCs and give in-flight ones ``grace_s`` to finish."""
        self.health.enter_graceful_shutdown()
        self.server.stop(self.grace_s if grace_s is None else grace_s).wait()
        log.info("gallery gRPC server on %s stopped", self.address)

    def wait(self, timeout: float | None = None) -> bool:
        return bool(self.server.wait_for_termination(timeout))
