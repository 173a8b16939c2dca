"""The ``anonreid`` command line: one Typer app; each area adds its commands here.

Command modules import their heavy dependencies (torch, ray, faiss) inside the command functions, so
``anonreid --help`` stays fast.
"""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from anonreid.events.world import cli as world_cli
from anonreid.gallery import cli as gallery_cli
from anonreid.models import cli as models_cli
from anonreid.models.evaluation import cli as evaluation_cli
from anonreid.nodes import cli as nodes_cli
from anonreid.nodes.adversary import cli as adversary_cli
from anonreid.orchestration.bench import app as bench_app
from anonreid.orchestration.cli_common import ConfigOption, SetOption, resolve_config
from anonreid.orchestration.config import config_to_yaml
from anonreid.orchestration.demo import demo_cmd
from anonreid.orchestration.infra.version import package_version
from anonreid.orchestration.placement import place_cameras_cmd
from anonreid.orchestration.security import cli as security_cli

app = typer.Typer(
    name="anonreid",
    help="Person re-identification across event cameras, without identification (event anonymization).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the resolved configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(bench_app, name="bench")
gallery_cli.register(app)  # gallery serve, identities, trajectory, search, forget
app.add_typer(nodes_cli.gateway_app, name="gateway")
app.add_typer(nodes_cli.camera_app, name="camera")
app.add_typer(adversary_cli.adversary_app, name="adversary")
app.add_typer(adversary_cli.audit_app, name="audit")
app.command("demo")(demo_cmd)
app.command("place-cameras")(place_cameras_cmd)
app.command("train")(models_cli.train)
app.command("evaluate")(evaluation_cli.evaluate)
app.command("frontier")(evaluation_cli.frontier)
app.command("rejudge")(evaluation_cli.rejudge)
app.command("simulate")(world_cli.simulate)
app.command("certs")(security_cli.certs)
app.add_typer(security_cli.tokens_app, name="tokens")

@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.captureWarnings(True)  # warnings (e.g. an inferred time unit) go to the log on stderr


@app.command("version")
def version_cmd() -> None:
    """Print the anonreid version."""
    typer.echo(package_version())


@config_app.command("show")
def config_show(config: ConfigOption = None, set_: SetOption = None) -> None:
    """Print the resolved configuration (defaults + file + --set overrides) as YAML."""
    typer.echo(config_to_yaml(resolve_config(config, set_)), nl=False)


def process_defaults() -> None:
    """Environment defaults of an ``anonreid`` process, set before any command imports torch.

    ``THP_MEM_ALLOC_ENABLE=1``: PyTorch's CPU allocator reads it once, at its first allocation, and then
    asks for transparent huge pages (2 MB-aligned, ``madvise``) for its large tensors; without it a
    kernel in the common ``madvise`` mode maps them in 4 KB pages and a training step takes a page fault
    per 4 KB of activations. Measured: the joint stage 15 % faster, page faults 10x fewer
    (docs/BENCHMARKS.md, "Transparent huge pages"). A value already in the environment wins.
    """
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


def main() -> None:
    process_defaults()
    app()


if __name__ == "__main__":
    main()
