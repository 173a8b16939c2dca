import ssl
import subprocess

import pytest

from anonreid.orchestration.security.certs import generate_dev_pki
from anonreid.orchestration.security.roles import Role, method_allowed
from anonreid.orchestration.security.tokens import TokenError, TokenStore, bearer_token, create_token


def test_roles_are_least_privilege():
    svc = "/anonreid.v1.Gallery/"
    assert method_allowed(Role.CAMERA, svc + "Publish")
    assert method_allowed(Role.CAMERA, svc + "PublishBatches")
    assert not method_allowed(Role.CAMERA, svc + "ListIdentities")
    assert method_allowed(Role.OPERATOR, svc + "GetTrajectory")
    assert not method_allowed(Role.OPERATOR, svc + "Forget")
    assert not method_allowed(Role.AUDITOR, svc + "QueryByExample")
    assert method_allowed(Role.ADMIN, svc + "Forget")
    assert not method_allowed(Role.ADMIN, svc + "Unknown")  # deny by default
    assert method_allowed(Role.CAMERA, "/grpc.health.v1.Health/Check")


def test_token_file_round_trip(tmp_path):
    f = tmp_path / "tokens.yaml"
    op = create_token(f, "alice", "operator")
    cam = create_token(f, "cam1", Role.CAMERA, cameras=["cam1, cam2", "cam1"])
    store = TokenStore.load(f)
    assert store.authenticate(op).role is Role.OPERATOR
    assert store.authenticate(cam).name == "cam1"
    assert store.authenticate(cam).cameras == ("cam1", "cam2") and store.authenticate(op).cameras == ()
    with pytest.raises(TokenError, match="must name the cameras"):
        create_token(f, "cam9", Role.CAMERA)
    with pytest.raises(TokenError, match="camera tokens only"):
        create_token(f, "bob", Role.OPERATOR, cameras=["cam1"])
    assert store.authenticate("nope") is None and store.authenticate(None) is None
    assert op not in f.read_text()  # only hashes are stored
    assert oct(f.stat().st_mode)[-3:] == "600"


def test_bad_token_files_are_named(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text("tokens:\n  - {name: x, role: superuser, sha256: " + "a" * 64 + "}\n")
    with pytest.raises(TokenError, match=r"t\.yaml, tokens\[0\]: unknown role 'superuser'"):
        TokenStore.load(f)
    f.write_text("tokens:\n  - {name: x, role: admin, sha256: abc}\n")
    with pytest.raises(TokenError, match="64 hex digits"):
        TokenStore.load(f)
    f.write_text("tokens:\n  - {name: x, role: camera, cameras: cam1, sha256: " + "a" * 64 + "}\n")
    with pytest.raises(TokenError, match=r"tokens\[0\]: cameras must be a list of camera ids"):
        TokenStore.load(f)
    f.write_text("tokens:\n  - {name: x, role: operator, cameras: [cam1], sha256: " + "a" * 64 + "}\n")
    with pytest.raises(TokenError, match="binds camera tokens only"):
        TokenStore.load(f)
    f.write_text("tokens:\n  - {name: old, role: camera, sha256: " + "a" * 64 + "}\n")  # before the binding
    assert TokenStore.load(f).principals()[0].camera_refusal("cam1").startswith("camera token 'old' is bound to no")


def test_bearer_header_parsing():
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer") is None and bearer_token(None) is None


def test_dev_pki_verifies_with_openssl_and_ssl(tmp_path):
    files = generate_dev_pki(tmp_path, hosts=("gallery.anonreid.svc", "10.0.0.7"))
    for cert in (files.server_cert, files.client_cert):
        out = subprocess.run(["openssl", "verify", "-CAfile", files.ca, cert], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    text = subprocess.run(["openssl", "x509", "-in", files.server_cert, "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    assert "DNS:gallery.anonreid.svc" in text and "IP Address:10.0.0.7" in text and "DNS:localhost" in text
    ctx = ssl.create_default_context(cafile=str(files.ca))
    ctx.load_cert_chain(files.client_cert, files.client_key)  # key matches certificate


def test_cli_certs_and_tokens(tmp_path):
    from typer.testing import CliRunner

    from anonreid.orchestration.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["certs", "--out", str(tmp_path / "pki"), "--host", "gallery"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "pki" / "server.key").exists()
    res = runner.invoke(app, ["tokens", "create", "--name", "cam1", "--role", "camera", "--camera", "cam1,cam2",
                              "--file", str(tmp_path / "t.yaml")])
    assert res.exit_code == 0, res.output
    principal = TokenStore.load(tmp_path / "t.yaml").authenticate(res.stdout.strip())  # (not stderr)
    assert principal is not None and principal.role is Role.CAMERA and principal.cameras == ("cam1", "cam2")
    unbound = runner.invoke(app, ["tokens", "create", "--name", "cam3", "--role", "camera", "--file",
                                  str(tmp_path / "t.yaml")])
    assert unbound.exit_code == 2 and "--camera" in unbound.output
    assert len(TokenStore.load(tmp_path / "t.yaml").principals()) == 1  # nothing written
    bad = runner.invoke(app, ["tokens", "create", "--name", "x", "--role", "root", "--file", str(tmp_path / "u.yaml")])
    assert bad.exit_code != 0
