"""Regenerate the Python code for the ``.proto`` contracts: ``python -m anonreid.proto.codegen``.

protoc writes imports such as ``from anonreid.v1 import sighting_pb2``; the generated modules live in
``anonreid.proto.v1``, so those imports are rewritten. ``--check`` regenerates into memory and exits
non-zero (listing the files) when the committed code differs from what the ``.proto`` files give.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
SOURCES = PROTO_ROOT / "anonreid" / "v1"
GENERATED = PROTO_ROOT / "v1"
_IMPORT = re.compile(r"^from anonreid\.v1 import ", re.MULTILINE)


def generate() -> dict[str, str]:
    """Run protoc over every ``.proto`` source and return {file name: generated text}."""
    from grpc_tools import protoc  # dev dependency: only the regeneration needs it

    protos = sorted(SOURCES.glob("*.proto"))
    if not protos:
        raise FileNotFoundError(f"no .proto files under {SOURCES}")
    include = Path(protoc.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *(str(p.relative_to(PROTO_ROOT)) for p in protos),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed: {' '.join(args)}")
        out = Path(tmp) / "anonreid" / "v1"
        return {
            f.name: _IMPORT.sub("from anonreid.proto.v1 import ", f.read_text())
            for f in sorted(out.iterdir())
            if f.suffix in {".py", ".pyi"}
        }


def stale_files(generated: dict[str, str]) -> list[str]:
    """Files whose committed text differs from ``generated`` (or that are missing or extra)."""
    committed = {f.name for f in GENERATED.glob("*_pb2*.py*")}
    names = sorted(committed | set(generated))
    return [
        n
        for n in names
        if n not in generated or not (GENERATED / n).exists() or (GENERATED / n).read_text() != generated[n]
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed code is stale")
    args = parser.parse_args(argv)
    generated = generate()
    stale = stale_files(generated)
    if args.check:
        if stale:
            print("generated protobuf code is stale: " + ", ".join(stale), file=sys.stderr)
            print("run: python -m anonreid.proto.codegen", file=sys.stderr)
            return 1
        return 0
    GENERATED.mkdir(exist_ok=True)
    for name in stale:
        if name in generated:
            (GENERATED / name).write_text(generated[name])
        else:
            (GENERATED / name).unlink()
    (GENERATED / "__init__.py").touch()
    print(f"wrote {len(stale)} file(s) under {GENERATED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
