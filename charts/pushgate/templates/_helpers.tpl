{{/* Name of the chart, for the app.kubernetes.io/name label. */}}
{{- define "pushgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects, at most 63 characters. */}}
{{- define "pushgate.fullname" -}}
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

{{- define "pushgate.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride }}
{{- end }}

{{- define "pushgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pushgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pushgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "pushgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "pushgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pushgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
"true" when the groups live in etcd (replicated mode: a Deployment), ""
when they live on the local volume (a StatefulSet).
*/}}
{{- define "pushgate.replicated" -}}
{{- if .Values.etcd.endpoints }}true{{ end }}
{{- end }}

{{/*
The effective route prefix, as pushgate computes it: routePrefix, or else
the path of externalURL; "" or "/x" without a trailing slash.
*/}}
{{- define "pushgate.routePrefix" -}}
{{- $p := .Values.routePrefix }}
{{- if and (not $p) .Values.externalURL }}
{{- $p = (urlParse .Values.externalURL).path }}
{{- end }}
{{- $p = trimAll "/" $p }}
{{- if $p }}/{{ $p }}{{ end }}
{{- end }}

{{- define "pushgate.webConfigSecretName" -}}
{{- default (printf "%s-web-config" (include "pushgate.fullname" .)) .Values.webConfiguration.existingSecret.name }}
{{- end }}

{{- define "pushgate.accessConfigSecretName" -}}
{{- default (printf "%s-access-config" (include "pushgate.fullname" .)) .Values.accessConfig.existingSecret.name }}
{{- end }}

{{/*
Refuses values that cannot work, with the reason. Included by the
workload templates, so every rendering runs it.
*/}}
{{- define "pushgate.validate" -}}
{{- $replicas := int .Values.replicaCount }}
{{- if and (gt $replicas 1) (not .Values.etcd.endpoints) }}
{{- fail (printf "replicaCount is %d but etcd.endpoints is empty: without etcd each replica keeps its groups in its own --storage.path, so the replicas would accept and serve different groups. Set etcd.endpoints (replicated mode, see the chart's README) or replicaCount: 1." $replicas) }}
{{- end }}
{{- if lt $replicas 0 }}
{{- fail "replicaCount must not be negative" }}
{{- end }}
{{- if and .Values.etcd.existingSecret (not .Values.etcd.endpoints) }}
{{- fail "etcd.existingSecret is set but etcd.endpoints is empty" }}
{{- end }}
{{- if hasKey .Values.webConfiguration "basicAuthUsers" }}
{{- fail "webConfiguration.basicAuthUsers (plain passwords, hashed at every rendering) is not supported: put bcrypt hashes in webConfiguration.config.basic_auth_users, or use accessConfig" }}
{{- end }}
{{- if and .Values.webConfiguration.config .Values.webConfiguration.existingSecret.name }}
{{- fail "set webConfiguration.config or webConfiguration.existingSecret.name, not both" }}
{{- end }}
{{- if and .Values.accessConfig.config .Values.accessConfig.existingSecret.name }}
{{- fail "set accessConfig.config or accessConfig.existingSecret.name, not both" }}
{{- end }}
{{- if not (has .Values.podAntiAffinity (list "" "soft" "hard")) }}
{{- fail (printf "podAntiAffinity must be \"soft\", \"hard\" or \"\", not %q" .Values.podAntiAffinity) }}
{{- end }}
{{- range .Values.extraArgs }}
{{- $arg := toString . }}
{{- range list "web.listen-address" "storage.path" "storage.etcd.endpoints" "storage.etcd.prefix" "storage.etcd.config.file" "web.config.file" "web.access-config" "web.route-prefix" "web.external-url" }}
{{- if or (eq $arg (printf "--%s" .)) (hasPrefix (printf "--%s=" .) $arg) }}
{{- fail (printf "extraArgs: --%s is set by the chart; use its value instead (see values.yaml)" .) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The container's arguments. */}}
{{- define "pushgate.args" -}}
- --web.listen-address=:9091
{{- if include "pushgate.replicated" . }}
- --storage.etcd.endpoints={{ join "," .Values.etcd.endpoints }}
- --storage.etcd.prefix={{ .Values.etcd.prefix }}
{{- if .Values.etcd.existingSecret }}
- --storage.etcd.config.file=/etc/pushgate/etcd/{{ .Values.etcd.configKey }}
{{- end }}
{{- end }}
{{- /* In etcd mode the directory is only looked at for a pushgate.db to
import; an empty one imports nothing. */}}
- --storage.path={{ .Values.persistentVolume.mountPath }}
{{- if or .Values.webConfiguration.config .Values.webConfiguration.existingSecret.name }}
- --web.config.file=/etc/pushgate/web/{{ .Values.webConfiguration.existingSecret.key }}
{{- end }}
{{- if or .Values.accessConfig.config .Values.accessConfig.existingSecret.name }}
- --web.access-config=/etc/pushgate/access/{{ .Values.accessConfig.existingSecret.key }}
{{- end }}
{{- with .Values.routePrefix }}
- --web.route-prefix={{ . }}
{{- end }}
{{- with .Values.externalURL }}
- --web.external-url={{ . }}
{{- end }}
{{- with .Values.extraArgs }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
A probe: the user's handler, or httpGet on path under the route prefix,
which the web config's basic auth would answer with 401: refused then,
rather than a pod that never gets ready.
*/}}
{{- define "pushgate.probe" -}}
{{- $probe := deepCopy (.probe | default dict) -}}
{{- if not (or $probe.httpGet $probe.tcpSocket $probe.exec $probe.grpc) -}}
{{- if (.root.Values.webConfiguration.config | default dict).basic_auth_users -}}
{{- fail (printf "webConfiguration.config.basic_auth_users guards %s too: the %s probe the chart would add gets 401, and the pod would never be ready or be restarted. Give %s.probe a handler of its own (tcpSocket: {port: http}, or an httpGet with an Authorization header), disable it, or authenticate with accessConfig, which leaves the probes open" .path .name .name) -}}
{{- end -}}
{{- $path := printf "%s%s" (include "pushgate.routePrefix" .root) .path -}}
{{- $_ := set $probe "httpGet" (dict "path" $path "port" "http" "scheme" (ternary "HTTPS" "HTTP" .root.Values.webConfiguration.tls)) -}}
{{- end -}}
{{- toYaml $probe -}}
{{- end }}

{{/* The pod template, shared by the StatefulSet and the Deployment. */}}
{{- define "pushgate.podTemplate" -}}
metadata:
  labels:
    {{- include "pushgate.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- /* A change of a rendered config restarts the pods. */}}
  {{- $annotations := dict }}
  {{- if .Values.webConfiguration.config }}
  {{- $_ := set $annotations "checksum/web-config" (toYaml .Values.webConfiguration.config | sha256sum) }}
  {{- end }}
  {{- if .Values.accessConfig.config }}
  {{- $_ := set $annotations "checksum/access-config" (toYaml .Values.accessConfig.config | sha256sum) }}
  {{- end }}
  {{- with merge $annotations (.Values.podAnnotations | default dict) }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "pushgate.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.automountServiceAccountToken }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . | quote }}
  {{- end }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.hostAliases }}
  hostAliases:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.extraInitContainers }}
  initContainers:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: pushgate
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        {{- include "pushgate.args" . | nindent 8 }}
      {{- with .Values.extraEnv }}
      env:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      ports:
        - name: http
          containerPort: 9091
          protocol: TCP
      {{- if .Values.liveness.enabled }}
      livenessProbe:
        {{- include "pushgate.probe" (dict "root" . "name" "liveness" "probe" .Values.liveness.probe "path" "/-/healthy") | nindent 8 }}
      {{- end }}
      {{- if .Values.readiness.enabled }}
      readinessProbe:
        {{- include "pushgate.probe" (dict "root" . "name" "readiness" "probe" .Values.readiness.probe "path" "/-/ready") | nindent 8 }}
      {{- end }}
      {{- with .Values.lifecycle }}
      lifecycle:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: storage
          mountPath: {{ .Values.persistentVolume.mountPath }}
          {{- with .Values.persistentVolume.subPath }}
          subPath: {{ . }}
          {{- end }}
        {{- if or .Values.webConfiguration.config .Values.webConfiguration.existingSecret.name }}
        - name: web-config
          mountPath: /etc/pushgate/web
          readOnly: true
        {{- end }}
        {{- if or .Values.accessConfig.config .Values.accessConfig.existingSecret.name }}
        - name: access-config
          mountPath: /etc/pushgate/access
          readOnly: true
        {{- end }}
        {{- if and (include "pushgate.replicated" .) .Values.etcd.existingSecret }}
        - name: etcd-config
          mountPath: /etc/pushgate/etcd
          readOnly: true
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    {{- with .Values.extraContainers }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- $volumes := list }}
  {{- if include "pushgate.replicated" . }}
  {{- $volumes = append $volumes (dict "name" "storage" "emptyDir" dict) }}
  {{- else if not .Values.persistentVolume.enabled }}
  {{- $volumes = append $volumes (dict "name" "storage" "emptyDir" dict) }}
  {{- else if .Values.persistentVolume.existingClaim }}
  {{- $volumes = append $volumes (dict "name" "storage" "persistentVolumeClaim" (dict "claimName" .Values.persistentVolume.existingClaim)) }}
  {{- end }}
  {{- if or .Values.webConfiguration.config .Values.webConfiguration.existingSecret.name }}
  {{- $volumes = append $volumes (dict "name" "web-config" "secret" (dict "secretName" (include "pushgate.webConfigSecretName" .))) }}
  {{- end }}
  {{- if or .Values.accessConfig.config .Values.accessConfig.existingSecret.name }}
  {{- $volumes = append $volumes (dict "name" "access-config" "secret" (dict "secretName" (include "pushgate.accessConfigSecretName" .))) }}
  {{- end }}
  {{- if and (include "pushgate.replicated" .) .Values.etcd.existingSecret }}
  {{- $volumes = append $volumes (dict "name" "etcd-config" "secret" (dict "secretName" .Values.etcd.existingSecret)) }}
  {{- end }}
  {{- $volumes = concat $volumes (.Values.extraVolumes | default list) }}
  {{- with $volumes }}
  volumes:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if .Values.affinity }}
  affinity:
    {{- toYaml .Values.affinity | nindent 4 }}
  {{- else if and (gt (int .Values.replicaCount) 1) .Values.podAntiAffinity }}
  affinity:
    podAntiAffinity:
      {{- if eq .Values.podAntiAffinity "hard" }}
      requiredDuringSchedulingIgnoredDuringExecution:
        - topologyKey: {{ .Values.podAntiAffinityTopologyKey }}
          labelSelector:
            matchLabels:
              {{- include "pushgate.selectorLabels" . | nindent 14 }}
      {{- else }}
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: {{ .Values.podAntiAffinityTopologyKey }}
            labelSelector:
              matchLabels:
                {{- include "pushgate.selectorLabels" . | nindent 16 }}
      {{- end }}
  {{- end }}
{{- end }}
