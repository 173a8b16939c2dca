"""gRPC credentials from the ``security`` configuration: TLS on the server (mutual TLS as an option) and
the matching channel credentials for clients. Plain-text is used only when TLS is off.

A certificate or key that is needed but not set, or cannot be read, raises :class:`CredentialsError`
naming the key, what needs it and where ``anonreid certs`` put it; :func:`check_files` reads them all
up front, so that a command can say so before it starts anything."""

from __future__ import annotations

from pathlib import Path

import grpc

from anonreid.orchestration.config import SecurityConfig

_CLIENT_PAIR = ("with security.mtls=true every gRPC client presents a client certificate, the console that "
                "`anonreid gallery serve` starts included: set security.client_cert and security.client_key "
                "(client.pem and client.key from `anonreid certs`), or turn the console off with "
                "console.enabled=false")
_NEEDED_FOR = {
    "ca_cert": "with security.tls=true clients verify the server, and with security.mtls=true the server "
               "verifies clients, against the CA certificate (ca.pem from `anonreid certs`)",
    "server_cert": "a server with security.tls=true needs its certificate (server.pem from `anonreid certs`)",
    "server_key": "a server with security.tls=true needs its private key (server.key from `anonreid certs`)",
    "client_cert": _CLIENT_PAIR,
    "client_key": _CLIENT_PAIR,
}


class CredentialsError(FileNotFoundError):
    """A certificate or key the ``security`` section needs is not set or cannot be read."""


def _read(path: str, what: str) -> bytes:
    if not path:
        raise CredentialsError(f"security.{what} is not set: {_NEEDED_FOR[what]}")
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CredentialsError(f"security.{what}: cannot read {path}: {exc.strerror}") from exc


def check_files(cfg: SecurityConfig, *, server: bool = False, client: bool = False) -> None:
    """Read every certificate and key a server and/or a client of ``cfg`` needs (nothing when TLS is
    off); raises :class:`CredentialsError` for the first one missing."""
    if server:
        server_credentials(cfg)
    if client:
        channel_credentials(cfg)


def server_credentials(cfg: SecurityConfig) -> grpc.ServerCredentials | None:
    """None when TLS is off (the server then binds an insecure port)."""
    if not cfg.tls:
        return None
    key, cert = _read(cfg.server_key, "server_key"), _read(cfg.server_cert, "server_cert")
    ca = _read(cfg.ca_cert, "ca_cert") if cfg.mtls else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=cfg.mtls)


def channel_credentials(cfg: SecurityConfig) -> grpc.ChannelCredentials | None:
    if not cfg.tls:
        return None
    ca = _read(cfg.ca_cert, "ca_cert")
    if cfg.mtls:
        return grpc.ssl_channel_credentials(ca, _read(cfg.client_key, "client_key"), _read(cfg.client_cert, "client_cert"))
    return grpc.ssl_channel_credentials(ca)


def open_channel(target: str, cfg: SecurityConfig, options: list[tuple[str, int]] | None = None) -> grpc.Channel:
    creds = channel_credentials(cfg)
    if creds is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, creds, options=options)
