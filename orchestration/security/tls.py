"""gRPC credentials from the ``security`` configuration: TLS on the server (mutual TLS as an option) and
the matching channel credentials for clients. Plain-text is used only when TLS is off."""

from __future__ import annotations

from pathlib import Path

import grpc

from anonreid.orchestration.config import SecurityConfig


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise FileNotFoundError(f"security.{what}: cannot read {path}: {exc.strerror}") from exc


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
