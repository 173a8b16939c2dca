"""Access control end to end over real localhost gRPC and HTTP: bearer tokens with roles on every gallery
RPC and console route, TLS and mutual TLS, and the access audit log of operator queries and forget."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import yaml

from anonreid.gallery.access import AccessLog
from anonreid.gallery.client import GalleryClient, GalleryClientError
from anonreid.gallery.service import GalleryServer
from anonreid.gallery.synthetic import prototypes, sighting
from anonreid.orchestration.config import GalleryConfig, SecurityConfig
from anonreid.orchestration.security.certs import generate_dev_pki
from anonreid.orchestration.security.roles import METHOD_ROLES, Role
from anonreid.orchestration.security.tokens import create_token

S = 1_000_000
CODE = grpc.StatusCode


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return generate_dev_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[Role, str]]:
    f = tmp_path_factory.mktemp("tokens") / "tokens.yaml"
    return f, {role: create_token(f, f"{role.value}-1", role, cameras=("cam1", "cam2") if role is Role.CAMERA else ())
               for role in Role}


def _security(pki: Any, tokens_file: Path | str = "", tls: bool = False, mtls: bool = False, token: str = "",
              client_cert: bool = True) -> SecurityConfig:
    return SecurityConfig(tls=tls, mtls=mtls, ca_cert=str(pki.ca), server_cert=str(pki.server_cert),
                          server_key=str(pki.server_key), client_cert=str(pki.client_cert) if client_cert else "",
                          client_key=str(pki.client_key) if client_cert else "", tokens_file=str(tokens_file),
                          token=token)


def _server(redis_url: str, security: SecurityConfig) -> GalleryServer:
    srv = GalleryServer(GalleryConfig(port=0, metrics_port=0, grace_s=0.5), redis_url, serve_metrics=False,
                        security=security)
    srv.start()
    return srv


def _client(address: str, security: SecurityConfig | None, **kw: Any) -> GalleryClient:
    return GalleryClient(address, security=security, retry_timeout_s=0.3, timeout_s=3, **kw)


def _code(fn: Any) -> CODE:
    try:
        fn()
    except GalleryClientError as exc:
        return exc.code
    return CODE.OK


def _calls(client: GalleryClient, sid: str) -> dict[str, Any]:
    """One call per Gallery method (the publish uses a fresh sighting id each time)."""
    rng = np.random.default_rng(abs(hash(sid)) % 2**32)

    def publish(batch: int) -> Any:  # publish_batch 1 publishes on Publish, more on PublishBatches
        client.publish_batch = batch
        return client.publish([sighting(f"{sid}-{batch}", "cam1", "t", 0, S, prototypes(1, 256, rng)[0])])

    return {
        "Publish": lambda: publish(1),
        "PublishBatches": lambda: publish(64),
        "ListIdentities": lambda: client.list_identities(),
        "GetTrajectory": lambda: client.trajectory("id-999999"),
        "QueryByExample": lambda: client.query(sighting=sighting("q", "cam1", "t", 0, S, prototypes(1, 256, rng)[0])),
        "Occupancy": lambda: client.occupancy(),
        "Forget": lambda: client.forget("id-999999"),
    }


def test_every_role_is_refused_outside_its_rights(redis_url: str, pki: Any, tokens: Any) -> None:
    tokens_file, by_role = tokens
    srv = _server(redis_url, _security(pki, tokens_file))
    try:
        assert {m.rsplit("/", 1)[-1] for m in METHOD_ROLES} == set(_calls(_client(srv.address, None), "x"))
        for role, token in by_role.items():
            with _client(srv.address, _security(pki, token=token)) as client:
                for method, call in _calls(client, f"{role.value}-s").items():
                    allowed = role is Role.ADMIN or role in METHOD_ROLES[f"/anonreid.v1.Gallery/{method}"]
                    code = _code(call)
                    # allowed calls pass access control (they may still find nothing: NOT_FOUND)
                    assert (code in (CODE.OK, CODE.NOT_FOUND)) if allowed else code == CODE.PERMISSION_DENIED, \
                        (role, method, code)
        for who, security in (("no token", None), ("unknown token", _security(pki, token="not-a-token"))):
            with _client(srv.address, security) as client:
                for method, call in _calls(client, "anon").items():
                    assert _code(call) == CODE.UNAUTHENTICATED, (who, method)
                assert client.health() == "SERVING"  # health checks stay public
        assert len(srv.gallery or []) == 4  # the camera's and the admin's publish on each RPC, nobody else's
    finally:
        srv.stop(0)


def test_tls_refuses_plain_text_and_mtls_refuses_clients_without_a_certificate(
        redis_url: str, pki: Any, tokens: Any) -> None:
    tokens_file, by_role = tokens
    srv = _server(redis_url, _security(pki, tokens_file, tls=True))
    try:
        with _client(srv.address, _security(pki, token=by_role[Role.OPERATOR])) as plain:
            assert _code(plain.list_identities) == CODE.UNAVAILABLE
        with _client(srv.address, _security(pki, tls=True, token=by_role[Role.OPERATOR])) as tls:
            assert tls.list_identities() == []
    finally:
        srv.stop(0)
    srv = _server(redis_url, _security(pki, tokens_file, tls=True, mtls=True))
    try:
        no_cert = _security(pki, tls=True, mtls=False, token=by_role[Role.OPERATOR], client_cert=False)
        with _client(srv.address, no_cert) as client:
            assert _code(client.list_identities) == CODE.UNAVAILABLE
        with _client(srv.address, _security(pki, tls=True, mtls=True, token=by_role[Role.OPERATOR])) as client:
            assert client.list_identities() == []
    finally:
        srv.stop(0)


def test_the_access_log_records_operator_queries_forget_and_refusals(redis_url: str, pki: Any, tokens: Any) -> None:
    tokens_file, by_role = tokens
    srv = _server(redis_url, _security(pki, tokens_file))
    rng = np.random.default_rng(1)
    protos = prototypes(2, 256, rng)
    try:
        with _client(srv.address, _security(pki, token=by_role[Role.CAMERA])) as cam:
            acks = cam.publish([sighting("a1", "cam1", "t1", 0, S, protos[0]),
                                sighting("b1", "cam2", "t2", 0, S, protos[1])])
        ida = next(a.identity_id for a in acks if a.sighting_id == "a1")
        idb = next(a.identity_id for a in acks if a.sighting_id == "b1")
        with _client(srv.address, _security(pki, token=by_role[Role.OPERATOR])) as op:
            op.list_identities()
            op.trajectory(ida)
            op.query(sighting_id="a1", k=5)
            op.occupancy()
            assert _code(lambda: op.forget(idb)) == CODE.PERMISSION_DENIED
        with _client(srv.address, _security(pki, token="stolen?")) as nobody:
            assert _code(nobody.list_identities) == CODE.UNAUTHENTICATED
        with _client(srv.address, _security(pki, token=by_role[Role.ADMIN])) as admin:
            assert admin.forget(idb, reason="subject request") == 1
        records = AccessLog(srv.gallery.store.client).records()  # type: ignore[union-attr]
        got = [(r.principal, r.role, r.method, r.outcome) for r in records]
        assert got == [("operator-1", "operator", "ListIdentities", "OK"),
                       ("operator-1", "operator", "GetTrajectory", "OK"),
                       ("operator-1", "operator", "QueryByExample", "OK"), ("operator-1", "operator", "Occupancy", "OK"),
                       ("operator-1", "operator", "Forget", "PERMISSION_DENIED"),
                       ("unauthenticated", "", "ListIdentities", "UNAUTHENTICATED"),
                       ("admin-1", "admin", "Forget", "OK")]  # accepted publishes are not access records
        listing, traj, query, _occ, refused, unknown, forget = records
        assert set(listing.identity_ids) == {ida, idb} and listing.num_identities == 2
        assert traj.identity_ids == (ida,) and traj.sighting_ids == ("a1",)
        assert query.sighting_ids[0] == "a1" and set(query.identity_ids) <= {ida, idb}
        assert forget.identity_ids == (idb,) and "subject request" in forget.detail
        assert "may not call it" in refused.detail and "127.0.0.1" in refused.detail  # why, and from where
        assert "unknown or malformed bearer token" in unknown.detail
        assert all(0 < r.at_us <= records[-1].at_us for r in records)
        # the forget record of the store's audit stream names the token's holder, not the peer address
        audit = srv.gallery.store.client.xrange(srv.gallery.store.audit_stream)  # type: ignore[union-attr]
        assert [f[b"actor"] for _, f in audit] == [b"admin-1"]
    finally:
        srv.stop(0)


def test_a_camera_token_publishes_only_as_its_cameras(redis_url: str, pki: Any, tokens: Any) -> None:
    tokens_file, by_role = tokens  # the camera token is bound to cam1 and cam2
    old = Path(tokens_file).with_name("old-tokens.yaml")  # a camera token made before the binding existed
    entries = yaml.safe_load(Path(tokens_file).read_text())["tokens"]
    old.write_text(yaml.safe_dump({"tokens": [{k: v for k, v in e.items() if k != "cameras"} for e in entries]}))
    protos = prototypes(4, 256, np.random.default_rng(2))
    srv = _server(redis_url, _security(pki, tokens_file))
    try:
        with _client(srv.address, _security(pki, token=by_role[Role.CAMERA])) as cam:
            acks = cam.publish([sighting("c1", "cam1", "t1", 0, S, protos[0]), sighting("c2", "cam2", "t2", 0, S, protos[1])])
            assert [a.sighting_id for a in acks] == ["c1", "c2"]
            with pytest.raises(GalleryClientError) as err:
                cam.publish([sighting("c3", "cam3", "t3", 0, S, protos[2])])
        assert err.value.code == CODE.PERMISSION_DENIED and "'cam3'" in err.value.details
        assert "cam1, cam2" in err.value.details and err.value.reason == "camera_not_bound"
        with _client(srv.address, _security(pki, token=by_role[Role.ADMIN])) as admin:  # admin is not bound
            assert admin.publish([sighting("a4", "cam4", "t4", 0, S, protos[3])])[0].sighting_id == "a4"
        assert sorted(srv.gallery._sightings) == ["a4", "c1", "c2"]  # type: ignore[union-attr]  # no c3
        refused = [r for r in AccessLog(srv.gallery.store.client).records() if r.outcome != "OK"]  # type: ignore[union-attr]
        assert [(r.principal, r.method, r.outcome) for r in refused] == [("camera-1", "PublishBatches", "PERMISSION_DENIED")]
        assert "'cam3'" in refused[0].detail
    finally:
        srv.stop(0)
    srv = _server(redis_url, _security(pki, old))
    try:
        with _client(srv.address, _security(pki, token=by_role[Role.CAMERA])) as cam, \
                pytest.raises(GalleryClientError) as err:
            cam.publish([sighting("c5", "cam1", "t5", 0, S, protos[0])])
        assert err.value.code == CODE.PERMISSION_DENIED
        assert "bound to no camera" in err.value.details and "--camera" in err.value.details
    finally:
        srv.stop(0)


def _http(url: str, token: str | None = None, data: bytes | None = None,
          opener: urllib.request.OpenerDirector | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if data is not None:  # the console takes JSON writes only
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with (opener or urllib.request.build_opener()).open(req, timeout=10) as resp:
            status, body, kind = resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        status, body, kind = exc.code, exc.read(), exc.headers.get("Content-Type", "")
    return status, json.loads(body or b"null") if kind.startswith("application/json") else body


def test_console_routes_check_roles_and_forward_the_caller(redis_url: str, pki: Any, tokens: Any) -> None:
    from anonreid.gallery.console.server import ConsoleBackend, ConsoleServer
    from anonreid.orchestration.redis_service import connect

    tokens_file, by_role = tokens
    srv = _server(redis_url, _security(pki, tokens_file, tls=True))
    backend = ConsoleBackend(srv.address, connect(redis_url), ["cam1", "cam2", "cam3", "cam4"],
                             security=_security(pki, tokens_file, tls=True))
    console = ConsoleServer(backend, port=0).start()
    try:
        base = console.url
        assert _http(base + "/api/identities")[0] == 401
        assert _http(base + "/api/identities", "wrong")[0] == 401
        assert _http(base + "/api/identities", by_role[Role.CAMERA])[0] == 403
        assert _http(base + "/api/privacy", by_role[Role.AUDITOR])[0] == 200
        assert _http(base + "/api/occupancy", by_role[Role.AUDITOR])[0] == 403
        status, body = _http(base + "/api/identities", by_role[Role.OPERATOR])
        assert status == 200 and body["identities"] == []
        forget = json.dumps({"identity_id": "id-000001", "confirm": "id-000001"}).encode()
        assert _http(base + "/api/forget", by_role[Role.OPERATOR], forget)[0] == 403
        assert _http(base + "/api/forget", by_role[Role.ADMIN], forget)[0] == 404  # allowed; nothing to forget
        # ?token= once sets the cookie, later requests carry it
        jar = CookieJar()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        assert _http(base + "/?token=" + by_role[Role.OPERATOR], opener=browser)[0] == 200  # redirected to the page
        assert [c.name for c in jar] == ["anonreid_token"]
        assert _http(base + "/api/occupancy", opener=browser)[0] == 200
        assert _http(base + "/?token=forged", opener=urllib.request.build_opener())[0] == 401
        # the gallery logged the operator (forwarded token), not the console
        principals = {r.principal for r in AccessLog(srv.gallery.store.client).records()}  # type: ignore[union-attr]
        assert principals == {"operator-1"}
    finally:
        console.stop()
        srv.stop(0)


def test_operator_cli_uses_tls_and_its_token(redis_url: str, pki: Any, tokens: Any, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from anonreid.orchestration.cli import app

    tokens_file, by_role = tokens
    srv = _server(redis_url, _security(pki, tokens_file, tls=True, mtls=True))
    try:
        sec = ["security.tls=true", "security.mtls=true", f"security.ca_cert={pki.ca}",
               f"security.client_cert={pki.client_cert}", f"security.client_key={pki.client_key}"]
        args = ["identities", "--address", srv.address, "--json"]
        runner = CliRunner()
        ok = runner.invoke(app, [*args, *(x for s in [*sec, f"security.token={by_role[Role.OPERATOR]}"]
                                          for x in ("--set", s))])
        assert ok.exit_code == 0, ok.output
        assert json.loads(ok.stdout) == []  # stdout alone: a Ray of this worker may warn on stderr
        denied = runner.invoke(app, [*args, *(x for s in [*sec, f"security.token={by_role[Role.CAMERA]}"]
                                              for x in ("--set", s))])
        assert denied.exit_code == 1 and "PERMISSION_DENIED" in denied.output
    finally:
        srv.stop(0)
