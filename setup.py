"""Maps the repository's top-level pipeline folders onto the one ``anonreid`` import namespace.

``events/`` becomes ``anonreid.events``, ``gallery/`` becomes ``anonreid.gallery``, and so on; every
sub-folder with an ``__init__.py`` is included, so a new module never needs a line here. ``anonreid``
itself is a namespace package: nothing generic (``proto``, ``nodes``) is installed at the top level.
"""

from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
PIPELINE_FOLDERS = ("events", "models", "nodes", "gallery", "proto", "orchestration")


def _packages() -> dict[str, str]:
    mapping: dict[str, str] = {}
    for folder in PIPELINE_FOLDERS:
        for init in sorted((HERE / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(HERE)
            mapping["anonreid." + ".".join(rel.parts)] = rel.as_posix()
    return mapping


PACKAGES = _packages()

setup(
    packages=sorted(PACKAGES),
    package_dir=PACKAGES,
    package_data={name: ["*.yaml", "*.proto", "*.json", "*.html", "*.js", "*.css", "*.safetensors", "py.typed"]
                  for name in PACKAGES}
    | {"anonreid.proto": ["anonreid/v1/*.proto"]},
    include_package_data=False,
)
