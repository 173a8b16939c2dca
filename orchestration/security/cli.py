"""``anonreid certs`` and ``anonreid tokens``: development PKI and bearer tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from anonreid.orchestration.security.roles import Role

tokens_app = typer.Typer(help="Bearer tokens with roles (camera, operator, auditor, admin).", no_args_is_help=True)


def certs(
    out: Annotated[Path, typer.Option("--out", help="directory for ca/server/client .pem and .key")] = Path("certs"),
    host: Annotated[list[str] | None, typer.Option("--host", help="extra server name or IP (repeatable)")] = None,
    days: Annotated[int, typer.Option(help="validity in days")] = 365,
) -> None:
    """Generate a development CA plus server and client certificates (for TLS and mutual TLS)."""
    from anonreid.orchestration.security.certs import generate_dev_pki

    files = generate_dev_pki(out, tuple(host or ()), days)
    typer.echo(f"CA {files.ca}\nserver {files.server_cert} {files.server_key}\nclient {files.client_cert} "
               f"{files.client_key}\nset security.tls=true security.ca_cert=... security.server_cert=... "
               "security.server_key=... (security.mtls=true also needs security.client_cert=... "
               "security.client_key=... for every client, the console of `gallery serve` included)")


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option(help="who holds the token (shown in the access log)")],
    role: Annotated[Role, typer.Option(help="what the token may do")],
    file: Annotated[Path, typer.Option("--file", help="token file (security.tokens_file)")] = Path("tokens.yaml"),
    camera: Annotated[list[str] | None, typer.Option(
        "--camera", help="camera ids a camera token may publish as: cam1,cam2 (repeatable; required for "
        "--role camera)")] = None,
) -> None:
    """Create a token, store its hash in FILE and print the token once."""
    from anonreid.orchestration.security.tokens import TokenError, create_token

    try:
        typer.echo(create_token(file, name, role, tuple(camera or ())))
    except TokenError as exc:
        raise typer.BadParameter(str(exc), param_hint="--camera") from None
