"""The Helm chart (helm/anonreid) and the Grafana dashboard, checked offline.

The chart is rendered and linted by Helm's own Go code (helm-python-sdk bundles it as a library: no
helm binary, no cluster, no network). Every rendered manifest is validated against the Kubernetes
schemas that kubernetes-validate ships (strict: unknown fields fail), at the oldest Kubernetes the chart
supports and the newest the package knows; the two custom resources (RayCluster, ServiceMonitor)
against the structural schemas in tests/schemas/, and the RayCluster's pod templates against
Kubernetes' own PodTemplate schema. The objects must also fit together (selectors, port names, Secret
and ConfigMap references), the rendered config file must load with the application's config loader, and
the TLS health probe must pass against a real gRPC health server using the chart's generated certificate.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import helm_python as helm  # helm-python-sdk (dev extra): Helm's Go SDK as a library, no binary
import jsonschema
import kubernetes_validate  # kubernetes-validate (dev extra): Kubernetes JSON schemas, offline
import pytest
import yaml

from anonreid.orchestration.config import ConfigError, load_config
from anonreid.orchestration.observability import (
    DASHBOARD_PATH,
    dashboard_metric_names,
    dashboard_queries,
    iter_panels,
    load_dashboard,
    metric_family,
    promql_metric_names,
)

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "helm" / "anonreid"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
RELEASE, NAMESPACE = "demo", "surveillance"
PREFIX = f"{RELEASE}-anonreid"
KUBE_VERSIONS = ("1.27", "1.37")  # the chart's kubeVersion floor, and the newest schemas bundled

# The metric names the nodes export for the dashboard; the dashboard uses exactly these.
CONTRACT_METRICS = {
    "anonreid_camera_events_total", "anonreid_camera_windows_total", "anonreid_camera_windows_dropped_total",
    "anonreid_camera_stage_latency_seconds", "anonreid_camera_queue_depth",
    "anonreid_camera_sightings_published_total", "anonreid_camera_realtime_factor",
    "anonreid_camera_active_tracks", "anonreid_camera_bad_input_total", "anonreid_camera_audit_samples_total",
    "anonreid_camera_audit_skipped_bursts_total", "anonreid_gallery_sightings_total", "anonreid_gallery_duplicates_total", "anonreid_gallery_entries",
    "anonreid_gallery_identities", "anonreid_gallery_search_latency_seconds",
    "anonreid_gallery_association_decisions_total", "anonreid_gallery_rejected_total",
    "anonreid_gallery_identity_splits_total", "anonreid_gallery_identity_corrections_total",
    "anonreid_gallery_merge_pass_seconds",
    "anonreid_grpc_requests_total", "anonreid_grpc_request_latency_seconds",
    "anonreid_privacy_ssim", "anonreid_privacy_psnr_db", "anonreid_privacy_rank1",
    "anonreid_privacy_rank1_chance", "anonreid_privacy_alerts_total", "anonreid_adversary_round_seconds",
}

EXTERNAL_REDIS = "redis://redis.data.svc:6379/2"
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "gpu": {"ray": {"gpuWorkers": {"enabled": True, "replicas": 2, "gpusPerWorker": 2}}},
    "external-redis": {"redis": {"url": EXTERNAL_REDIS, "password": "from-values"}},
    "external-redis-secret": {"redis": {"url": EXTERNAL_REDIS, "existingSecret": "redis-auth",
                                        "existingSecretPasswordKey": "password"}},
    "external-ray": {"ray": {"address": "ray://ray-head.ray.svc:10001", "auth": {"existingSecret": "ray-token"}}},
    "tls": {"tls": {"enabled": True, "mutual": True}},
    "minimal": {"adversary": {"enabled": False}, "auth": {"enabled": False}, "ray": {"auth": {"enabled": False}},
                "metrics": {"serviceMonitor": {"enabled": False}, "grafanaDashboard": {"enabled": False}},
                "redis": {"persistence": {"enabled": False}},
                "cameras": {"ids": ["hall", "gate"]}, "serviceAccount": {"create": False}},
}
# Secrets the value sets name but the chart does not create (they exist in the cluster).
EXISTING_SECRETS = {"redis-auth": {"password"}, "ray-token": {"auth-token"}}


# ---------------------------------------------------------------------------------------------- helpers


@functools.cache
def _render(values_json: str) -> tuple[dict[str, str], tuple[dict[str, Any], ...]]:
    with helm.Chart.load(CHART) as chart:
        out = chart.render(values=json.loads(values_json), name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for template, text in sorted(out.items()):
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("metadata", {}).setdefault("annotations", {})
                doc["metadata"]["annotations"].setdefault("x-template", template)
                docs.append(doc)
    return out, tuple(docs)


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Rendered objects (a deep copy: tests may not alter the cache)."""
    return copy.deepcopy(list(_render(json.dumps(values, sort_keys=True))[1]))


def notes(values: dict[str, Any]) -> str:
    out = _render(json.dumps(values, sort_keys=True))[0]
    return next(text for name, text in out.items() if name.endswith("NOTES.txt"))


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def strip_annotation(doc: dict[str, Any]) -> dict[str, Any]:
    """The object as Kubernetes would get it (without the test's x-template marker)."""
    doc = copy.deepcopy(doc)
    annotations = doc["metadata"]["annotations"]
    annotations.pop("x-template", None)
    if not annotations:
        del doc["metadata"]["annotations"]
    return doc


def pod_templates(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(owner, pod template) of every workload, the RayCluster's head and worker groups included."""
    for d in docs:
        owner = f"{d['kind']}/{d['metadata']['name']}"
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield owner, d["spec"]["template"]
        elif d["kind"] == "RayCluster":
            yield owner + "/head", d["spec"]["headGroupSpec"]["template"]
            for group in d["spec"].get("workerGroupSpecs", []):
                yield f"{owner}/{group['groupName']}", group["template"]


def secret_data(doc: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in doc.get("data", {}).items()}


def rendered_config(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return yaml.safe_load(one(docs, "ConfigMap", f"{PREFIX}-config")["data"]["config.yaml"])


def container(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return one(docs, kind, name)["spec"]["template"]["spec"]["containers"][0]


def expand_env(arg: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of container arguments."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), arg)


def set_overrides(args: list[str], env: dict[str, str]) -> list[str]:
    return [expand_env(args[i + 1], env) for i, a in enumerate(args[:-1]) if a == "--set"]


# ---------------------------------------------------------------------------------------------- lint


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_chart_lints_clean(name: str) -> None:
    report = helm.lint(CHART, VALUE_SETS[name], strict=True, namespace=NAMESPACE, kube_version="v1.31.0")
    assert report["errors"] == [], report
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 2 = warning, 3 = error
    assert problems == [], problems


def test_lint_reports_a_broken_chart(tmp_path: Path) -> None:
    """The linter is not a rubber stamp: a chart whose template does not parse fails it."""
    with helm.Chart.load(CHART) as chart:
        broken = Path(chart.save_dir(tmp_path))
    (broken / "templates" / "broken.yaml").write_text("kind: ConfigMap\nmetadata: {{ .Values.nope.missing }\n")
    report = helm.lint(broken, strict=True)
    assert any(m["severity"] == 3 for m in report["messages"]), report


@pytest.mark.parametrize(("bad", "where"), [
    ({"gallery": {"metricPort": 9100}}, "additional properties 'metricPort'"),
    ({"gallery": {"port": "50051x"}}, "/gallery/port"),
    ({"gallery": {"port": 70000}}, "/gallery/port"),
    ({"redis": {"appendfsync": "sometimes"}}, "/redis/appendfsync"),
    ({"redis": {"url": "http://redis:6379"}}, "/redis/url"),
    ({"ray": {"gpuWorkers": {"enabled": "yes"}}}, "/ray/gpuWorkers/enabled"),
    ({"cameras": {"ids": ["Cam 1"]}}, "/cameras/ids/0"),
    ({"cameras": {"source": "kafka"}}, "/cameras/source"),
    ({"console": {"allowedHosts": ["console.example.com:8080"]}}, "/console/allowedHosts/0"),
    ({"console": {"allowedHosts": ["https://console.example.com"]}}, "/console/allowedHosts/0"),
    ({"console": {"allowUnauthenticated": "yes"}}, "/console/allowUnauthenticated"),
])
def test_values_schema_rejects_typos_and_wrong_types(bad: dict[str, Any], where: str) -> None:
    """values.schema.json: a misspelt key or a wrong type fails at install instead of being ignored."""
    with helm.Chart.load(CHART) as chart:
        for values in VALUE_SETS.values():
            chart.validate_schema(values)
        with pytest.raises(helm.HelmValuesError, match=re.escape(where)):
            chart.validate_schema(bad)


# ---------------------------------------------------------------------------------------------- schemas


@functools.cache
def crd_schema(kind: str) -> dict[str, Any]:
    path = {"RayCluster": "raycluster-ray-v1.json", "ServiceMonitor": "servicemonitor-monitoring-v1.json"}[kind]
    schema = json.loads((SCHEMAS / path).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def validate_object(doc: dict[str, Any], version: str) -> None:
    doc = strip_annotation(doc)
    if doc["kind"] in ("RayCluster", "ServiceMonitor"):
        jsonschema.Draft202012Validator(crd_schema(doc["kind"])).validate(doc)
        for owner, template in pod_templates([doc]):
            pod_template = {"apiVersion": "v1", "kind": "PodTemplate",
                            "metadata": {"name": owner.split("/")[-1]}, "template": template}
            kubernetes_validate.validate(pod_template, version, strict=True)
        return
    kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_manifest_validates(name: str, version: str) -> None:
    docs = render(VALUE_SETS[name])
    assert docs
    failures = []
    for doc in docs:
        try:
            validate_object(doc, version)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as exc:
            path = ".".join(str(p) for p in exc.path)
            failures.append(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {exc.message}")
    assert failures == []


def test_validators_reject_broken_objects() -> None:
    """A typo in a pod spec, a number where KubeRay wants a string, an unknown ServiceMonitor field: each fails."""
    docs = render({})
    deployment = strip_annotation(one(docs, "Deployment", f"{PREFIX}-gallery"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[-1], strict=True)
    ray = one(docs, "RayCluster", f"{PREFIX}-ray")
    ray["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0
    with pytest.raises(jsonschema.ValidationError):
        validate_object(ray, KUBE_VERSIONS[-1])
    ray = one(render({}), "RayCluster", f"{PREFIX}-ray")
    ray["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_object(ray, KUBE_VERSIONS[-1])
    monitor = by_kind(docs, "ServiceMonitor")[0]
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        validate_object(monitor, KUBE_VERSIONS[-1])


# ---------------------------------------------------------------------------------------------- objects


def test_default_install_objects() -> None:
    docs = render({})
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert kinds == sorted([
        ("ConfigMap", f"{PREFIX}-config"), ("ConfigMap", f"{PREFIX}-dashboard"),
        ("Deployment", f"{PREFIX}-adversary"), ("Deployment", f"{PREFIX}-gallery"),
        ("Job", f"{PREFIX}-cameras"), ("RayCluster", f"{PREFIX}-ray"),
        ("Secret", f"{PREFIX}-ray-auth"), ("Secret", f"{PREFIX}-redis"), ("Secret", f"{PREFIX}-tokens"),
        ("Service", f"{PREFIX}-adversary"), ("Service", f"{PREFIX}-gallery"),
        ("Service", f"{PREFIX}-ray-head-metrics"), ("Service", f"{PREFIX}-ray-worker-metrics"),
        ("Service", f"{PREFIX}-redis"), ("Service", f"{PREFIX}-redis-headless"),
        ("ServiceAccount", PREFIX),
        ("ServiceMonitor", f"{PREFIX}-adversary"), ("ServiceMonitor", f"{PREFIX}-gallery"),
        ("ServiceMonitor", f"{PREFIX}-ray"), ("StatefulSet", f"{PREFIX}-redis"),
        ("NetworkPolicy", f"{PREFIX}-redis"),
    ])
    ray = one(docs, "RayCluster", f"{PREFIX}-ray")
    assert [g["groupName"] for g in ray["spec"]["workerGroupSpecs"]] == ["cpu"]
    assert ray["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"  # no actors on the head
    for _, template in pod_templates(docs):
        for c in template["spec"]["containers"]:
            assert "nvidia.com/gpu" not in json.dumps(c.get("resources", {}))
    assert "WARNING: gRPC runs without TLS" in notes({})


def test_gpu_values_add_a_gpu_worker_group() -> None:
    docs = render(VALUE_SETS["gpu"])
    groups = {g["groupName"]: g for g in one(docs, "RayCluster", f"{PREFIX}-ray")["spec"]["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    gpu = groups["gpu"]
    assert gpu["replicas"] == 2
    resources = gpu["template"]["spec"]["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == 2 and resources["requests"]["nvidia.com/gpu"] == 2
    assert resources["requests"]["memory"] == "16Gi"  # the other resources are kept
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu["template"]["spec"]["tolerations"]
    assert "nvidia.com/gpu" not in json.dumps(groups["cpu"]["template"]["spec"]["containers"][0]["resources"])
    assert "GPU workers with 2 nvidia.com/gpu each" in notes(VALUE_SETS["gpu"])


def test_redis_statefulset_is_append_only_with_a_password_from_a_secret() -> None:
    docs = render({})
    sts = one(docs, "StatefulSet", f"{PREFIX}-redis")
    c = sts["spec"]["template"]["spec"]["containers"][0]
    command = " ".join(c["command"] + c["args"])
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    assert '--requirepass "$REDIS_PASSWORD"' in command
    env = {e["name"]: e for e in c["env"]}
    ref = env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": f"{PREFIX}-redis", "key": "redis-password"}
    password = secret_data(one(docs, "Secret", f"{PREFIX}-redis"))["redis-password"]
    assert re.fullmatch(r"[A-Za-z0-9]{40}", password)  # generated: no value given, nothing to look up offline
    assert password not in json.dumps(docs)  # only base64 in its Secret: not in the ConfigMap, not in args
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    assert c["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    # the application reaches it at the Service with the password from the same Secret
    assert rendered_config(docs)["redis"]["url"] == f"redis://{PREFIX}-redis.{NAMESPACE}.svc:6379/0"
    # the NetworkPolicy admits exactly the pods that hold the Redis password (and Redis itself)
    policy = one(docs, "NetworkPolicy", f"{PREFIX}-redis")
    assert _labels_match(policy["spec"]["podSelector"]["matchLabels"], sts["spec"]["template"]["metadata"]["labels"])
    allowed = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    for owner, template in pod_templates(docs):
        names = {e["name"] for e in template["spec"]["containers"][0].get("env", [])}
        if "ANONREID_REDIS_PASSWORD" in names:
            assert _labels_match(allowed, template["metadata"]["labels"]), owner
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": "redis", "protocol": "TCP"}]
    assert not by_kind(render({"redis": {"networkPolicy": False}}), "NetworkPolicy")
    always = render({"redis": {"appendfsync": "always", "password": "given"}})
    always_sts = one(always, "StatefulSet", f"{PREFIX}-redis")["spec"]["template"]["spec"]["containers"][0]
    assert "--appendfsync always" in always_sts["args"][0]
    assert secret_data(one(always, "Secret", f"{PREFIX}-redis"))["redis-password"] == "given"


@pytest.mark.parametrize("name", ["external-redis", "external-redis-secret"])
def test_existing_redis_by_url(name: str) -> None:
    docs = render(VALUE_SETS[name])
    assert by_kind(docs, "StatefulSet") == []
    assert not [d for d in by_kind(docs, "Service") if "redis" in d["metadata"]["name"]]
    assert rendered_config(docs)["redis"]["url"] == EXTERNAL_REDIS
    secret_name = "redis-auth" if name == "external-redis-secret" else f"{PREFIX}-redis"
    key = "password" if name == "external-redis-secret" else "redis-password"
    gallery = container(docs, "Deployment", f"{PREFIX}-gallery")
    env = {e["name"]: e for e in gallery["env"]}
    assert env["ANONREID_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": secret_name, "key": key}
    if name == "external-redis":
        assert secret_data(one(docs, "Secret", secret_name)) == {key: "from-values"}
    else:
        assert not [d for d in by_kind(docs, "Secret") if "redis" in d["metadata"]["name"]]


def test_existing_redis_without_password_passes_none() -> None:
    docs = render({"redis": {"url": EXTERNAL_REDIS}})
    gallery = container(docs, "Deployment", f"{PREFIX}-gallery")
    assert "ANONREID_REDIS_PASSWORD" not in json.dumps(gallery)
    assert not [d for d in by_kind(docs, "Secret") if "redis" in d["metadata"]["name"]]


def test_existing_ray_cluster() -> None:
    docs = render(VALUE_SETS["external-ray"])
    assert by_kind(docs, "RayCluster") == []
    assert rendered_config(docs)["ray"]["address"] == "ray://ray-head.ray.svc:10001"
    job = container(docs, "Job", f"{PREFIX}-cameras")
    assert job["args"][job["args"].index("--ray-address") + 1] == "ray://ray-head.ray.svc:10001"
    env = {e["name"]: e for e in job["env"]}
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "ray-token", "key": "auth-token"}
    assert [m["metadata"]["name"] for m in by_kind(docs, "ServiceMonitor")] == [
        f"{PREFIX}-gallery", f"{PREFIX}-adversary"]


def test_render_refuses_incomplete_security_values() -> None:
    with pytest.raises(helm.HelmError, match=r"ray\.auth"):
        render({"ray": {"address": "ray://elsewhere:10001"}})
    with pytest.raises(helm.HelmError, match=r"tls\.cert, tls\.key and tls\.ca"):
        render({"tls": {"enabled": True, "cert": "-----BEGIN CERTIFICATE-----"}})


def test_ray_nodes_and_driver_keep_token_auth() -> None:
    docs = render({})
    token = secret_data(one(docs, "Secret", f"{PREFIX}-ray-auth"))["auth-token"]
    assert len(token) == 40
    owners = [o for o, _ in pod_templates(docs) if "RayCluster" in o] + ["Job"]
    assert len(owners) == 3
    for owner, template in pod_templates(docs):
        env = {e["name"]: e for e in template["spec"]["containers"][0].get("env", [])}
        if "RayCluster" in owner or owner.startswith("Job/"):
            assert env["RAY_AUTH_MODE"]["value"] == "token", owner
            assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == f"{PREFIX}-ray-auth"
        else:  # least privilege: the gallery, adversary and Redis never see Ray's token
            assert "RAY_AUTH_TOKEN" not in env, owner


def test_role_tokens_and_tls_secrets(tmp_path: Path) -> None:
    from anonreid.orchestration.security.tokens import TokenStore

    docs = render({"auth": {"tokens": {"operator": "op-token"}}})
    tokens = secret_data(one(docs, "Secret", f"{PREFIX}-tokens"))
    assert set(tokens) == {"camera", "operator", "auditor", "admin", "tokens.yaml"}
    assert tokens["operator"] == "op-token"
    assert len({tokens[r] for r in ("camera", "auditor", "admin")}) == 3  # generated, distinct
    # the gallery's token file (hashes only) authenticates each role's plaintext token
    (tmp_path / "tokens.yaml").write_text(tokens["tokens.yaml"])
    store = TokenStore.load(tmp_path / "tokens.yaml")
    for role in ("camera", "operator", "auditor", "admin"):
        principal = store.authenticate(tokens[role])
        assert principal is not None and principal.role == role
        assert tokens[role] not in tokens["tokens.yaml"]
        # the camera token is bound to the chart's cameras (a camera token publishes as those only)
        assert principal.cameras == (("cam1", "cam2", "cam3", "cam4") if role == "camera" else ())
    assert store.authenticate("op-token-x") is None
    named = secret_data(one(render({"cameras": {"ids": ["gate", "lobby"]}}), "Secret", f"{PREFIX}-tokens"))
    (tmp_path / "named.yaml").write_text(named["tokens.yaml"])
    camera = TokenStore.load(tmp_path / "named.yaml").authenticate(named["camera"])
    assert camera is not None and camera.cameras == ("gate", "lobby")
    # pods mount only the hashes; a node gets its own role's token and no other
    for owner, template in pod_templates(docs):
        for volume in template["spec"].get("volumes", []):
            if volume["name"] == "tokens":
                assert volume["secret"]["items"] == [{"key": "tokens.yaml", "path": "tokens.yaml"}], owner
        env = {e["name"]: e for e in template["spec"]["containers"][0].get("env", [])}
        role = env.get("ANONREID_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef", {}).get("key")
        expected = {"gallery": None, "adversary": "auditor", "cameras": "camera", "ray": "camera", "redis": None}
        assert role == expected[template["metadata"]["labels"]["app.kubernetes.io/component"]], owner
    secret = one(docs, "Secret", f"{PREFIX}-tokens")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    tls = one(render(VALUE_SETS["tls"]), "Secret", f"{PREFIX}-tls")
    assert tls["type"] == "kubernetes.io/tls"
    pem = secret_data(tls)
    assert pem["tls.crt"].startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY-----" in pem["tls.key"] and pem["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")
    for _, template in pod_templates(render(VALUE_SETS["tls"])):
        if template["spec"]["containers"][0]["image"].startswith("ghcr.io/anonreid/"):
            mounts = {m["mountPath"] for m in template["spec"]["containers"][0]["volumeMounts"]}
            assert {"/etc/anonreid/tls", "/etc/anonreid/tokens"} <= mounts


def test_gallery_probes_use_grpc_health() -> None:
    gallery = container(render({}), "Deployment", f"{PREFIX}-gallery")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert gallery[probe]["grpc"] == {"port": 50051}
    assert gallery["startupProbe"]["failureThreshold"] * gallery["startupProbe"]["periodSeconds"] == 300
    tls_gallery = container(render(VALUE_SETS["tls"]), "Deployment", f"{PREFIX}-gallery")
    assert tls_gallery["readinessProbe"]["exec"]["command"][:2] == ["python", "-c"]


def _health_server(pem: dict[str, str], mutual: bool) -> tuple[Any, Any, int]:
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    creds = grpc.ssl_server_credentials(
        [(pem["tls.key"].encode(), pem["tls.crt"].encode())],
        root_certificates=pem["ca.crt"].encode(), require_client_auth=mutual,
    )
    port = server.add_secure_port("localhost:0", creds)
    server.start()
    return server, servicer, port


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
def test_tls_health_probe_against_a_real_server(tmp_path: Path, mutual: bool) -> None:
    """The exec probe, run as rendered, checks a TLS gRPC health server that uses the chart's generated certificate."""
    from grpc_health.v1 import health_pb2

    values = {"tls": {"enabled": True, "mutual": mutual}}
    docs = render(values)
    pem = secret_data(one(docs, "Secret", f"{PREFIX}-tls"))
    for name, text in pem.items():
        (tmp_path / name).write_text(text)
    server, servicer, port = _health_server(pem, mutual)
    try:
        command = container(docs, "Deployment", f"{PREFIX}-gallery")["readinessProbe"]["exec"]["command"]
        code = command[2].replace("/etc/anonreid/tls/", f"{tmp_path}/").replace("localhost:50051", f"localhost:{port}")
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert run.returncode == 1, run.stderr
    finally:
        server.stop(None)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_gallery_container_command_runs(tmp_path: Path, redis_service: Any) -> None:
    """The gallery container's command line, as rendered, serves gRPC health and metrics against a
    password-protected Redis, and stops within the pod's termination grace period on SIGTERM.

    Only what points outside this machine is overridden (the Redis URL and the two ports)."""
    import signal
    import time
    import urllib.request

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    docs = render({})
    spec = one(docs, "Deployment", f"{PREFIX}-gallery")["spec"]["template"]["spec"]
    gallery = spec["containers"][0]
    config = tmp_path / "config.yaml"
    config.write_text(one(docs, "ConfigMap", f"{PREFIX}-config")["data"]["config.yaml"])
    password = "chart-Pa55word"
    redis_service.client().config_set("requirepass", password)
    grpc_port, metrics_port = _free_port(), _free_port()
    args = [str(config) if a == "/etc/anonreid/config.yaml" else expand_env(a, {"ANONREID_REDIS_PASSWORD": password})
            for a in gallery["args"]]
    from anonreid.orchestration.security.tokens import create_token

    tokens = tmp_path / "tokens.yaml"  # the chart mounts the tokens Secret's hashes at security.tokens_file
    create_token(tokens, "operator", "operator")
    local = ["--set", f"redis.url={redis_service.url}", "--set", f"gallery.port={grpc_port}",
             "--set", f"gallery.metrics_port={metrics_port}", "--set", f"security.tokens_file={tokens}",
             "--set", f"console.port={_free_port()}"]
    log = tmp_path / "gallery.log"
    out = log.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "anonreid.orchestration.cli", *args, *local],
                            stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        channel = grpc.insecure_channel(f"localhost:{grpc_port}")
        stub = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 90  # well inside the startup probe's 300 s
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status
                break
            except grpc.RpcError:
                time.sleep(0.5)
        assert status == health_pb2.HealthCheckResponse.SERVING, log.read_text()
        channel.close()
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        assert "anonreid_gallery_entries" in text
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=spec["terminationGracePeriodSeconds"])
        assert proc.returncode == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
        client = redis_service.client()
        client.connection_pool.connection_kwargs["password"] = password
        client.config_set("requirepass", "")


# ---------------------------------------------------------------------------------------------- wiring


def _labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_objects_refer_to_each_other(name: str) -> None:
    docs = render(VALUE_SETS[name])
    secrets = {d["metadata"]["name"]: set(d.get("data", {})) for d in by_kind(docs, "Secret")}
    secrets.update(EXISTING_SECRETS)
    config_maps = {d["metadata"]["name"] for d in by_kind(docs, "ConfigMap")}
    templates = list(pod_templates(docs))
    for owner, template in templates:
        spec = template["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for v in volumes.values():
            if "secret" in v:
                assert v["secret"]["secretName"] in secrets, (owner, v)
            if "configMap" in v:
                assert v["configMap"]["name"] in config_maps, (owner, v)
        claims = {c["metadata"]["name"] for d in by_kind(docs, "StatefulSet")
                  if owner == f"StatefulSet/{d['metadata']['name']}" for c in d["spec"].get("volumeClaimTemplates", [])}
        for c in spec["containers"]:
            for m in c.get("volumeMounts", []):
                assert m["name"] in volumes or m["name"] in claims, (owner, m)
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets.get(ref["name"], set()), (owner, ref)
        if spec.get("serviceAccountName"):
            accounts = {d["metadata"]["name"] for d in by_kind(docs, "ServiceAccount")} | {"default"}
            assert spec["serviceAccountName"] in accounts, owner
    services = by_kind(docs, "Service")
    for svc in services:
        selected = [t for _, t in templates if _labels_match(svc["spec"]["selector"], t["metadata"]["labels"])]
        assert selected, f"Service {svc['metadata']['name']} selects no pod"
        for port in svc["spec"]["ports"]:
            names = {p.get("name") for t in selected for c in t["spec"]["containers"] for p in c.get("ports", [])}
            assert port["targetPort"] in names, (svc["metadata"]["name"], port)
    monitored = set()
    for monitor in by_kind(docs, "ServiceMonitor"):
        selected = [s for s in services if _labels_match(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
        assert selected, f"ServiceMonitor {monitor['metadata']['name']} selects no Service"
        port_names = {p["name"] for s in selected for p in s["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in port_names, (monitor["metadata"]["name"], endpoint)
            monitored |= {(s["metadata"]["name"], endpoint["port"]) for s in selected
                          if endpoint["port"] in {p["name"] for p in s["spec"]["ports"]}}
    metrics_ports = {(s["metadata"]["name"], p["name"]) for s in services for p in s["spec"]["ports"]
                     if "metrics" in p["name"]}
    if by_kind(docs, "ServiceMonitor"):
        assert metrics_ports == monitored  # every metrics endpoint is scraped
    else:
        assert VALUE_SETS[name]["metrics"]["serviceMonitor"]["enabled"] is False


def test_camera_metrics_ports_follow_the_camera_ids() -> None:
    docs = render({"cameras": {"count": 6, "metricsPort": 9300}})
    assert rendered_config(docs)["gallery"]["camera_ids"] == [f"cam{i}" for i in range(1, 7)]
    assert rendered_config(docs)["camera"]["metrics_port"] == 9300
    svc = one(docs, "Service", f"{PREFIX}-ray-worker-metrics")
    assert [(p["name"], p["port"]) for p in svc["spec"]["ports"]] == [("metrics", 8080)] + [
        (f"cam-metrics-{i}", 9300 + i) for i in range(6)]
    assert "6 CameraNode actors (cam1, cam2, cam3, cam4, cam5, cam6)" in notes({"cameras": {"count": 6, "metricsPort": 9300}})


def test_camera_and_adversary_metrics_listen_beyond_the_pod() -> None:
    """The ServiceMonitors scrape the camera and adversary ports from Prometheus's pod, so the chart binds
    them to every interface (the nodes' own default is loopback)."""
    config = rendered_config(render({}))
    assert config["camera"]["metrics_host"] == config["adversary"]["metrics_host"] == "0.0.0.0"


def test_console_host_and_write_checks_are_chart_values(tmp_path: Path) -> None:
    """console.allowedHosts / console.allowUnauthenticated reach the config file the console reads, closed by
    default: with auth off, the console the chart configures refuses a foreign DNS name and refuses forget."""
    from http import HTTPStatus

    from anonreid.gallery.console.guard import ApiError, RequestGuard

    def console(values: dict[str, Any]) -> tuple[Any, RequestGuard]:
        path = tmp_path / "config.yaml"
        path.write_text(one(render(values), "ConfigMap", f"{PREFIX}-config")["data"]["config.yaml"])
        c = load_config(path)
        return c.console, RequestGuard(c.console.host, c.console.allowed_hosts, c.console.allow_unauthenticated,
                                       access_control=bool(c.security.tokens_file))

    write = {"origin": None, "fetch_site": None, "content_type": "application/json"}
    default, guard = console({"auth": {"enabled": False}})
    assert (default.host, default.allowed_hosts, default.allow_unauthenticated) == ("0.0.0.0", [], False)
    guard.check_host("localhost:8080")  # kubectl port-forward
    for refused in (lambda: guard.check_host("console.example.com"),
                    lambda: guard.check_write("10.0.0.7:8080", **write)):
        with pytest.raises(ApiError) as info:
            refused()
        assert info.value.status == HTTPStatus.FORBIDDEN

    opened, guard = console({"auth": {"enabled": False},
                             "console": {"allowedHosts": ["console.example.com"], "allowUnauthenticated": True}})
    assert (opened.allowed_hosts, opened.allow_unauthenticated) == (["console.example.com"], True)
    guard.check_host("console.example.com")
    guard.check_write("console.example.com", **{**write, "origin": "https://console.example.com"})
    assert "console.allowUnauthenticated=true: anyone who reaches the console port can also erase" in notes(
        {"auth": {"enabled": False}, "console": {"allowUnauthenticated": True}})

    # the same keys through the generic passthrough would be overridden by the chart's: refused, named
    for key, value in (("allowed_hosts", "allowedHosts"), ("allow_unauthenticated", "allowUnauthenticated")):
        with pytest.raises(helm.HelmError, match=rf"config\.console\.{key}: set the chart value console\.{value}"):
            render({"config": {"console": {key: ["x"] if key == "allowed_hosts" else True}}})
    assert rendered_config(render({"config": {"console": {"request_timeout_s": 5}}}))["console"]["request_timeout_s"] == 5


# ---------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_rendered_config_and_overrides_load(tmp_path: Path, name: str) -> None:
    """config.yaml plus each container's --set overrides, as Kubernetes expands them, pass the app's loader."""
    docs = render(VALUE_SETS[name])
    path = tmp_path / "config.yaml"
    path.write_text(one(docs, "ConfigMap", f"{PREFIX}-config")["data"]["config.yaml"])
    base = load_config(path)
    assert base.gallery.host == f"{PREFIX}-gallery.{NAMESPACE}.svc"
    assert (base.gallery.port, base.gallery.metrics_port) == (50051, 9100)
    tls = VALUE_SETS[name].get("tls", {})
    assert (base.security.tls, base.security.mtls) == (tls.get("enabled", False), tls.get("mutual", False))
    auth = VALUE_SETS[name].get("auth", {}).get("enabled", True)
    assert base.security.tokens_file == ("/etc/anonreid/tokens/tokens.yaml" if auth else "")
    if base.security.tls:  # the files the chart mounts
        assert base.security.server_cert == "/etc/anonreid/tls/tls.crt"
        assert base.security.client_key == "/etc/anonreid/tls/tls.key"
    env = {"ANONREID_REDIS_PASSWORD": "pa55-Word:with #symbols", "ANONREID_TOKEN": "tok-en_1"}
    checked = 0
    for owner, template in pod_templates(docs):
        c = template["spec"]["containers"][0]
        if "--config" not in c.get("args", []):
            continue
        assert c["args"][c["args"].index("--config") + 1] == "/etc/anonreid/config.yaml"
        overrides = set_overrides(c["args"], env)
        cfg = load_config(path, overrides)
        has_password = any(e["name"] == "ANONREID_REDIS_PASSWORD" for e in c.get("env", []))
        assert cfg.redis.password == (env["ANONREID_REDIS_PASSWORD"] if has_password else ""), owner
        has_token = any(e["name"] == "ANONREID_TOKEN" for e in c.get("env", []))
        assert cfg.security.token == (env["ANONREID_TOKEN"] if has_token else ""), owner
        if "gallery" in owner:
            assert cfg.gallery.host == "0.0.0.0"
        checked += 1
    assert checked == (3 if VALUE_SETS[name].get("adversary", {}).get("enabled", True) else 2)


def test_config_value_passes_through_and_chart_values_win() -> None:
    docs = render({"config": {"gallery": {"similarity_threshold": 0.65, "port": 1}, "camera": {"embed_every": 2}},
                   "gallery": {"port": 6000}, "events": {"windowUs": 50000}})
    cfg = rendered_config(docs)
    assert cfg["gallery"]["similarity_threshold"] == 0.65 and cfg["camera"]["embed_every"] == 2
    assert cfg["gallery"]["port"] == 6000  # the Service and the probes use this port: it must win
    assert cfg["events"]["window_us"] == 50000
    gallery = container(docs, "Deployment", f"{PREFIX}-gallery")
    assert gallery["readinessProbe"]["grpc"]["port"] == 6000
    svc = one(docs, "Service", f"{PREFIX}-gallery")
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]}["grpc"] == 6000


def test_detector_and_tracker_settings_reach_the_cameras_config(tmp_path: Path) -> None:
    """camera.detector.*, camera.tracker.* and camera.publish_backoff_max_s (issue #20 item 3) go through
    `config` into the file the camera driver loads; the application's loader checks them there, and a bad
    value fails naming its key."""
    def camera(settings: dict[str, Any]) -> Any:
        path = tmp_path / "config.yaml"
        docs = render({"config": {"camera": settings}})
        path.write_text(one(docs, "ConfigMap", f"{PREFIX}-config")["data"]["config.yaml"])
        return load_config(path).camera

    got = camera({"detector": {"cell": 8, "merge_overlap": 0.7}, "tracker": {"iou_threshold": 0.3, "max_misses": 5},
                  "publish_backoff_max_s": 5.0})
    assert (got.detector.cell, got.detector.merge_overlap, got.detector.threshold) == (8, 0.7, 0.08)
    assert (got.tracker.iou_threshold, got.tracker.max_misses, got.tracker.min_hits) == (0.3, 5, 3)
    assert got.publish_backoff_max_s == 5.0 and got.metrics_host == "0.0.0.0"  # the chart's own keys still win
    with pytest.raises(ConfigError, match=r"camera\.tracker\.iou_threshold: expected float, got 1\.5"):
        camera({"tracker": {"iou_threshold": 1.5}})


def test_config_change_restarts_pods() -> None:
    """Pods carry the config's checksum, so a new config rolls them."""
    def checksum(values: dict[str, Any]) -> str:
        annotations = one(render(values), "Deployment", f"{PREFIX}-gallery")["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/config"])

    assert checksum({}) == checksum({}) != checksum({"config": {"gallery": {"similarity_threshold": 0.7}}})


@pytest.mark.parametrize("command", [("gallery", "serve"), ("place-cameras",), ("adversary", "run")],
                         ids=lambda c: " ".join(c))
def test_container_arguments_parse_with_the_cli(command: tuple[str, ...]) -> None:
    """Each container's arguments are a valid `anonreid` command line (parsed, not run)."""
    import typer

    from anonreid.orchestration.cli import app

    leaf: Any = typer.main.get_command(app)  # a click group (typer ships its own click)
    for part in command:
        leaf = getattr(leaf, "commands", {}).get(part)
    assert leaf is not None, f"the chart runs `anonreid {' '.join(command)}`, which the CLI does not have"
    checked = 0
    for name in ("default", "tls", "external-ray", "minimal"):
        for _, template in pod_templates(render(VALUE_SETS[name])):
            args = template["spec"]["containers"][0].get("args", [])
            if tuple(args[: len(command)]) == command:
                env = {"ANONREID_REDIS_PASSWORD": "secret", "ANONREID_TOKEN": "token"}
                expanded = [expand_env(a, env) for a in args[len(command):]]
                leaf.make_context(" ".join(command), expanded)  # raises a UsageError on a bad option
                checked += 1
    assert checked >= 3


# ---------------------------------------------------------------------------------------------- README


def _leaf_keys(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            yield from _leaf_keys(value, path)
        else:
            yield path


def test_readme_documents_every_value() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    keys = list(_leaf_keys(values))
    assert len(keys) > 100
    missing = [k for k in keys if f"`{k}`" not in readme]
    assert missing == []
    with helm.Chart.load(CHART) as chart:
        assert chart.values == values  # Helm reads the same defaults


# ---------------------------------------------------------------------------------------------- dashboard


def test_dashboard_panels_have_datasource_and_queries() -> None:
    dashboard = load_dashboard(DASHBOARD_PATH)
    panels = [p for p in iter_panels(dashboard) if p["type"] != "row"]
    assert len(panels) >= 19
    assert len({p["id"] for p in iter_panels(dashboard)}) == len(list(iter_panels(dashboard)))
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"] == panel["datasource"]
            assert promql_metric_names(target["expr"]), (panel["title"], target["expr"])
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["w"] > 0 and grid["h"] > 0
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("events per second", "windows per second", "real-time factor", "latency p50", "latency p95",
                  "queue depth", "dropped", "sightings published", "entries and identities", "search latency",
                  "association decisions", "grpc errors by code", "ssim", "psnr", "rank-1 vs chance", "alerts",
                  "audit tap"):
        assert topic in titles, topic


def test_dashboard_uses_exactly_the_contract_metrics() -> None:
    names = dashboard_metric_names(DASHBOARD_PATH)
    assert {metric_family(n) for n in names} == CONTRACT_METRICS
    assert "anonreid_camera_stage_latency_seconds_bucket" in names  # histogram_quantile reads buckets
    for expr in dashboard_queries(load_dashboard(DASHBOARD_PATH)):
        if "histogram_quantile" in expr:
            assert re.search(r"sum by \(le\b|sum by \(le,", expr), expr


def test_dashboard_metrics_exist_in_the_collectors() -> None:
    """Every sample the dashboard reads is one that the nodes' collectors export."""
    from prometheus_client import CollectorRegistry

    from anonreid.gallery.metrics import GalleryMetrics
    from anonreid.nodes import metrics as camera_metrics
    from anonreid.nodes.adversary.metrics import AdversaryMetrics

    exported: set[str] = set()
    registries = [GalleryMetrics().registry, CollectorRegistry()]
    AdversaryMetrics(registries[1])
    families = [f for r in registries for f in r.collect()]
    from prometheus_client import REGISTRY

    families += [f for f in REGISTRY.collect() if f.name.startswith("anonreid_camera")]
    assert camera_metrics.EVENTS is not None
    for family in families:
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
        exported |= {family.name + s for s in suffixes}
    missing = dashboard_metric_names(DASHBOARD_PATH) - exported
    assert missing == set()


def test_dashboard_configmap_ships_the_file() -> None:
    cm = one(render({}), "ConfigMap", f"{PREFIX}-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["anonreid.json"]) == json.loads(DASHBOARD_PATH.read_text())
    other = one(render({"metrics": {"grafanaDashboard": {"namespace": "monitoring"}}}), "ConfigMap", f"{PREFIX}-dashboard")
    assert other["metadata"]["namespace"] == "monitoring"


def test_promql_metric_name_extraction() -> None:
    expr = ('histogram_quantile(0.95, sum by (le, stage) (rate(anonreid_camera_stage_latency_seconds_bucket'
            '{camera=~"anonreid_not_a_metric", anonreid_label!="x"}[$__rate_interval]))) / on(camera) '
            'group_left (anonreid_other) anonreid_camera_realtime_factor '
            '+ sum without (anonreid_label) (anonreid_gallery_entries)')
    assert promql_metric_names(expr) == {
        "anonreid_camera_stage_latency_seconds_bucket", "anonreid_camera_realtime_factor",
        "anonreid_gallery_entries"}
    assert promql_metric_names('label_values(anonreid_camera_events_total, camera)') == {"anonreid_camera_events_total"}
    assert metric_family("anonreid_gallery_search_latency_seconds_count") == "anonreid_gallery_search_latency_seconds"
    assert metric_family("anonreid_camera_events_total") == "anonreid_camera_events_total"


def test_dashboard_errors_name_the_file(tmp_path: Path) -> None:
    from anonreid.orchestration.observability import DashboardError

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DashboardError, match=r"bad\.json"):
        dashboard_metric_names(bad)
    bad.write_text('{"title": "x"}')
    with pytest.raises(DashboardError, match="no 'panels'"):
        dashboard_metric_names(bad)
    with pytest.raises(DashboardError, match="cannot read"):
        dashboard_metric_names(tmp_path / "missing.json")
