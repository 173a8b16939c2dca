{{/*
Names, labels and the small pieces every workload shares (image, config volume, secrets as
environment variables, the common `--config/--set` arguments).
*/}}

{{- define "anonreid.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "anonreid.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "anonreid.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "anonreid.labels" -}}
helm.sh/chart: {{ include "anonreid.chart" . }}
app.kubernetes.io/name: {{ include "anonreid.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: anonreid
{{- end }}

{{/* Selector labels of one component: include "anonreid.selectorLabels" (list $ "gallery") */}}
{{- define "anonreid.selectorLabels" -}}
{{- $ctx := index . 0 -}}
app.kubernetes.io/name: {{ include "anonreid.name" $ctx }}
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* All labels of one component's objects and pods. */}}
{{- define "anonreid.componentLabels" -}}
{{ include "anonreid.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "anonreid.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "anonreid.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "anonreid.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* ---------------------------------------------------------------- addresses */}}

{{- define "anonreid.galleryServiceName" -}}
{{- printf "%s-gallery" (include "anonreid.fullname" .) }}
{{- end }}

{{/* DNS name the gallery's clients connect to. */}}
{{- define "anonreid.galleryClientHost" -}}
{{- printf "%s.%s.svc" (include "anonreid.galleryServiceName" .) .Release.Namespace }}
{{- end }}

{{- define "anonreid.redisName" -}}
{{- printf "%s-redis" (include "anonreid.fullname" .) }}
{{- end }}

{{/* The Redis the application uses: redis.url, or the chart's StatefulSet. */}}
{{- define "anonreid.redisUrl" -}}
{{- if .Values.redis.url }}
{{- .Values.redis.url }}
{{- else }}
{{- printf "redis://%s.%s.svc:%v/0" (include "anonreid.redisName" .) .Release.Namespace .Values.redis.port }}
{{- end }}
{{- end }}

{{/* Name of the Secret with the Redis password; empty when there is no password. */}}
{{- define "anonreid.redisSecretName" -}}
{{- if .Values.redis.existingSecret }}
{{- .Values.redis.existingSecret }}
{{- else if or (not .Values.redis.url) .Values.redis.password }}
{{- include "anonreid.redisName" . }}
{{- end }}
{{- end }}

{{- define "anonreid.rayClusterName" -}}
{{- printf "%s-ray" (include "anonreid.fullname" .) | trunc 50 | trimSuffix "-" }}
{{- end }}

{{/* The Ray cluster the camera driver joins: ray.address, or the chart's RayCluster head. */}}
{{- define "anonreid.rayAddress" -}}
{{- if .Values.ray.address }}
{{- .Values.ray.address }}
{{- else }}
{{- printf "ray://%s-head-svc.%s.svc:%v" (include "anonreid.rayClusterName" .) .Release.Namespace .Values.ray.clientPort }}
{{- end }}
{{- end }}

{{- define "anonreid.raySecretName" -}}
{{- default (printf "%s-ray-auth" (include "anonreid.fullname" .)) .Values.ray.auth.existingSecret }}
{{- end }}

{{- define "anonreid.tokensSecretName" -}}
{{- default (printf "%s-tokens" (include "anonreid.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{- define "anonreid.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "anonreid.fullname" .)) .Values.tls.existingSecret }}
{{- end }}

{{/* Camera ids as a list: cameras.ids, or cam1..cam<count>. */}}
{{- define "anonreid.cameraIds" -}}
{{- $ids := .Values.cameras.ids }}
{{- if not $ids }}
{{- $ids = list }}
{{- range $i := until (int .Values.cameras.count) }}
{{- $ids = append $ids (printf "cam%d" (add1 $i)) }}
{{- end }}
{{- end }}
{{- toJson $ids }}
{{- end }}

{{/* ---------------------------------------------------------------- secrets */}}

{{/*
A secret value that survives upgrades: the given value, else the one already stored in the cluster
(lookup; empty when rendering offline), else a random one.
include "anonreid.secretValue" (dict "ctx" $ "name" NAME "key" KEY "value" VALUE)
*/}}
{{- define "anonreid.secretValue" -}}
{{- if .value }}
{{- .value }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .name }}
{{- if and $existing $existing.data (hasKey $existing.data .key) }}
{{- index $existing.data .key | b64dec }}
{{- else }}
{{- randAlphaNum 40 }}
{{- end }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- containers */}}

{{/*
Environment of an anonreid container: the Redis password and the node's own bearer token, which the
arguments refer to. include "anonreid.env" (list $ ROLE); ROLE "" for a node that calls no service.
*/}}
{{- define "anonreid.env" -}}
{{- $ctx := index . 0 }}
{{- $role := index . 1 }}
{{- $redisSecret := include "anonreid.redisSecretName" $ctx }}
{{- if $redisSecret }}
- name: ANONREID_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $redisSecret }}
      key: {{ $ctx.Values.redis.existingSecretPasswordKey }}
{{- end }}
{{- if and $ctx.Values.auth.enabled $role }}
- name: ANONREID_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "anonreid.tokensSecretName" $ctx }}
      key: {{ $role }}
{{- end }}
{{- end }}

{{/* Environment of the Ray nodes and the Ray driver: Ray's token authentication stays on. */}}
{{- define "anonreid.rayEnv" -}}
- name: RAY_USAGE_STATS_ENABLED
  value: "0"
{{- if .Values.ray.auth.enabled }}
- name: RAY_AUTH_MODE
  value: token
- name: RAY_AUTH_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "anonreid.raySecretName" . }}
      key: {{ .Values.ray.auth.existingSecretKey }}
{{- end }}
{{- end }}

{{/*
Arguments every anonreid command takes: the config file, then secrets as --set overrides
(Kubernetes expands $(VAR) from the container's environment, see "anonreid.env"; the value is a
single-quoted YAML string, so a password must not contain a single quote).
include "anonreid.configArgs" (list $ ROLE)
*/}}
{{- define "anonreid.configArgs" -}}
{{- $ctx := index . 0 }}
{{- $role := index . 1 -}}
- --config
- /etc/anonreid/config.yaml
{{- if include "anonreid.redisSecretName" $ctx }}
- --set
- redis.password='$(ANONREID_REDIS_PASSWORD)'
{{- end }}
{{- if and $ctx.Values.auth.enabled $role }}
- --set
- security.token='$(ANONREID_TOKEN)'
{{- end }}
{{- end }}

{{- define "anonreid.volumeMounts" -}}
- name: config
  mountPath: /etc/anonreid/config.yaml
  subPath: config.yaml
  readOnly: true
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: /etc/anonreid/tls
  readOnly: true
{{- end }}
{{- if .Values.auth.enabled }}
- name: tokens
  mountPath: /etc/anonreid/tokens
  readOnly: true
{{- end }}
{{- end }}

{{- define "anonreid.volumes" -}}
- name: config
  configMap:
    name: {{ include "anonreid.fullname" . }}-config
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ include "anonreid.tlsSecretName" . }}
    defaultMode: 0440
{{- end }}
{{- if .Values.auth.enabled }}
- name: tokens
  secret:
    secretName: {{ include "anonreid.tokensSecretName" . }}
    defaultMode: 0440
    items:
      - key: tokens.yaml
        path: tokens.yaml
{{- end }}
{{- end }}

{{/* Pod-level settings shared by every anonreid pod. */}}
{{- define "anonreid.podCommon" -}}
serviceAccountName: {{ include "anonreid.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Pod annotations: the config's checksum (pods restart when it changes) plus podAnnotations. */}}
{{- define "anonreid.podAnnotations" -}}
checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The gallery's gRPC health check (grpc.health.v1): Kubernetes' own gRPC probe in plain text; with TLS
an exec probe, because the kubelet's gRPC probe cannot speak TLS (the certificate names localhost;
with mutual TLS the probe presents the server's own key pair).
*/}}
{{- define "anonreid.galleryHealthCheck" -}}
{{- if .Values.tls.enabled }}
{{- $client := ternary "r('tls.key'), r('tls.crt')" "None, None" .Values.tls.mutual -}}
exec:
  command:
    - python
    - -c
    - >-
      import sys, grpc;
      from grpc_health.v1 import health_pb2, health_pb2_grpc;
      r = lambda name: open('/etc/anonreid/tls/' + name, 'rb').read();
      creds = grpc.ssl_channel_credentials(r('ca.crt'), {{ $client }});
      channel = grpc.secure_channel('localhost:{{ .Values.gallery.port }}', creds);
      reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout={{ .Values.gallery.probes.timeoutSeconds }});
      sys.exit(0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1)
{{- else -}}
grpc:
  port: {{ .Values.gallery.port }}
{{- end }}
{{- end }}

{{/* Config `security`: TLS files and the token file where the chart mounts its Secrets. */}}
{{- define "anonreid.securityConfig" -}}
tls: {{ .Values.tls.enabled }}
mtls: {{ and .Values.tls.enabled .Values.tls.mutual }}
{{- if .Values.tls.enabled }}
ca_cert: /etc/anonreid/tls/ca.crt
server_cert: /etc/anonreid/tls/tls.crt
server_key: /etc/anonreid/tls/tls.key
{{- if .Values.tls.mutual }}
client_cert: /etc/anonreid/tls/tls.crt
client_key: /etc/anonreid/tls/tls.key
{{- end }}
{{- end }}
{{- if .Values.auth.enabled }}
tokens_file: /etc/anonreid/tokens/tokens.yaml
{{- end }}
{{- end }}
