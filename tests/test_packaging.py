"""The wheel installs into a fresh virtual environment and exposes only the ``anonreid`` namespace."""

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


def test_wheel_installs_into_fresh_venv(tmp_path: Path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(REPO)],
        check=True, capture_output=True, cwd=tmp_path,
    )
    wheel = next(dist.glob("anonreid-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"anonreid"}, f"generic top-level names installed: {tops}"
    assert "anonreid/proto/anonreid/v1/gallery.proto" in names

    venv = tmp_path / "venv"
    # no pip of its own (ensurepip costs ~4 s of CPU): the project's pip installs into it (--python)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    # The heavy dependencies (torch, ray, faiss) come from the project's environment, as
    # system-site-packages would give them; anonreid itself comes only from the wheel.
    site = Path(subprocess.check_output([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                        text=True).strip())
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True)
    code = (
        "import anonreid.gallery, anonreid.nodes, anonreid.proto, anonreid.events, anonreid.models, "
        "anonreid.orchestration, anonreid.orchestration.infra.version\n"
        "from anonreid.proto.v1 import gallery_pb2_grpc\n"
        "import anonreid.proto as p; print(p.__file__)"
    )
    out = subprocess.run([py, "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path).stdout
    assert str(venv) in out, f"anonreid imported from outside the fresh venv: {out}"
    help_text = subprocess.run([venv / "bin" / "anonreid", "--help"], check=True, capture_output=True,
                               text=True).stdout
    assert "anonreid" in help_text and "config" in help_text
