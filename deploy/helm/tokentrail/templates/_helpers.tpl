{{/* Names and labels. */}}
{{- define "tokentrail.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tokentrail.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: include with (dict "root" $ "component" "ingest"). */}}
{{- define "tokentrail.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The image, pinned: a digest, else a tag (the appVersion when empty), never "latest". */}}
{{- define "tokentrail.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if eq $tag "latest" -}}
{{- fail "image.tag: \"latest\" is not a pinned version; give a release tag or image.digest" -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The Secret the pods read: an existing one, or the chart's. */}}
{{- define "tokentrail.secretName" -}}
{{- default (printf "%s-secrets" (include "tokentrail.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/*
Fails when a configuration value that tokentrail treats as a secret (a key ending in
password, token or secret) is set in `config`, which lands in a ConfigMap. Recursive over
tables: include with (dict "path" "" "value" .Values.config).
*/}}
{{- define "tokentrail.noSecretsInConfig" -}}
{{- if kindIs "map" .value -}}
{{- range $k, $v := .value -}}
{{- $path := ternary $k (printf "%s.%s" $.path $k) (eq $.path "") -}}
{{- if or (kindIs "map" $v) (kindIs "slice" $v) -}}
{{- include "tokentrail.noSecretsInConfig" (dict "path" $path "value" $v) -}}
{{- else if and $v (regexMatch "(password|token|secret)$" $k) -}}
{{- fail (printf "config.%s holds a secret and would land in a ConfigMap: put it in secrets.files and refer to it with %s_file (docs/deploy.md)" $path $k) -}}
{{- end -}}
{{- end -}}
{{- else if kindIs "slice" .value -}}
{{- range $i, $v := .value -}}
{{- include "tokentrail.noSecretsInConfig" (dict "path" (printf "%s[%d]" $.path $i) "value" $v) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* tokentrail.toml, checked for secrets first. */}}
{{- define "tokentrail.configToml" -}}
{{- include "tokentrail.noSecretsInConfig" (dict "path" "" "value" .Values.config) -}}
{{- toToml .Values.config -}}
{{- end -}}

{{/* A config key such as kafka.sasl.password as its _FILE variable. */}}
{{- define "tokentrail.fileEnv" -}}
{{- printf "TOKENTRAIL__%s_FILE" (. | replace "." "__" | upper) -}}
{{- end -}}

{{/* Pod-level security: the image's unprivileged user, never root. */}}
{{- define "tokentrail.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "tokentrail.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/*
The container fields every tokentrail container shares: image, config and secret files,
environment. include with (dict "root" $ "args" LIST "extraEnv" LIST "resources" MAP
"configName" NAME "secretName" NAME).
*/}}
{{- define "tokentrail.container" -}}
image: {{ include "tokentrail.image" .root | quote }}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
args:
{{- toYaml .args | nindent 2 }}
env:
  - name: TOKENTRAIL_CONFIG
    value: /etc/tokentrail/tokentrail.toml
{{- range $key, $_ := .root.Values.secrets.files }}
{{- /* A dotted config path becomes its _FILE variable; other names (a list entry's token,
       say) are only mounted, and the config names the file with `token_file`. */}}
{{- if regexMatch "^[a-z_]+(\\.[a-z_]+)+$" $key }}
{{- if not (regexMatch "(password|token|secret)$" $key) }}
{{- fail (printf "secrets.files.%s: only keys ending in password, token or secret can be read from files" $key) }}
{{- end }}
  - name: {{ include "tokentrail.fileEnv" $key }}
    value: {{ printf "/etc/tokentrail/secrets/%s" $key | quote }}
{{- end }}
{{- end }}
{{- with .extraEnv }}
{{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
{{- include "tokentrail.containerSecurityContext" .root | nindent 2 }}
resources:
{{- toYaml .resources | nindent 2 }}
volumeMounts:
  - name: config
    mountPath: /etc/tokentrail/tokentrail.toml
    subPath: tokentrail.toml
    readOnly: true
  - name: tmp
    mountPath: /tmp
{{- if .root.Values.secrets.files }}
  - name: secrets
    mountPath: /etc/tokentrail/secrets
    readOnly: true
{{- end }}
{{- end -}}

{{- define "tokentrail.volumes" -}}
- name: config
  configMap:
    name: {{ .configName }}
- name: tmp
  emptyDir: {sizeLimit: 64Mi}
{{- if .root.Values.secrets.files }}
- name: secrets
  secret:
    secretName: {{ .secretName }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "tokentrail.probes" -}}
livenessProbe:
  httpGet: {path: /healthz, port: metrics}
{{- toYaml .Values.probes.liveness | nindent 2 }}
readinessProbe:
  httpGet: {path: /readyz, port: metrics}
{{- toYaml .Values.probes.readiness | nindent 2 }}
{{- end -}}

{{/* Ports from the listen addresses in `config`, so the probes follow the configuration. */}}
{{- define "tokentrail.metricsPort" -}}
{{- .Values.config.telemetry.listen | splitList ":" | last | int -}}
{{- end -}}
{{- define "tokentrail.collectPort" -}}
{{- .Values.config.collect.listen | splitList ":" | last | int -}}
{{- end -}}
