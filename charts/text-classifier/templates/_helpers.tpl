{{/* Names and labels shared by every object. */}}
{{- define "tc.name" -}}{{ .Release.Name | trunc 40 | trimSuffix "-" }}{{- end -}}

{{- define "tc.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "tc.image" -}}{{ printf "%s/%s" .root.Values.image.registry .image }}{{- end -}}

{{- define "tc.redisSecret" -}}
{{- .Values.redis.existingSecret | default (printf "%s-redis" (include "tc.name" .)) -}}
{{- end -}}

{{/* The container securityContext every workload of the chart uses. */}}
{{- define "tc.containerSecurity" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* OpenTelemetry's standard env vars, when tracing.endpoint is set (contract/tracing.py reads nothing else). */}}
{{- define "tc.tracingEnv" -}}
{{- with .root.Values.tracing }}
{{- if .endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .endpoint | quote }}
- name: OTEL_TRACES_SAMPLER  # the caller's traceparent decides; samplingRatio only for traces that start here
  value: parentbased_traceidratio
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .samplingRatio | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ printf "%s-%s" $.model $.component | quote }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ printf "service.namespace=%s,k8s.namespace.name=%s" $.root.Release.Name $.root.Release.Namespace | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The CA that verifies Redis: our own Redis's (redis.tls) or an external one's (redis.external.caSecret). */}}
{{- define "tc.redisCaSecret" -}}
{{- if .Values.redis.enabled -}}
{{- if .Values.redis.tls.enabled }}{{ .Values.redis.tls.secretName }}{{ end -}}
{{- else -}}
{{- .Values.redis.external.caSecret -}}
{{- end -}}
{{- end -}}

{{/*
One check of the values that the schema cannot express; it fails with every message
at once, so a user fixes them in one round.
*/}}
{{- define "tc.validateValues" -}}
{{- $messages := list -}}
{{- if and (not .Values.redis.enabled) (not .Values.redis.external.url) (not .Values.redis.existingSecret) -}}
{{- $messages = append $messages "redis: with redis.enabled=false, set redis.external.url or redis.existingSecret" -}}
{{- end -}}
{{- $enabled := 0 -}}
{{- range $name, $model := .Values.models -}}
{{- if $model.enabled -}}{{- $enabled = add1 $enabled -}}{{- end -}}
{{- if and $model.enabled $model.canary.enabled (or (not $model.canary.image) (not $model.canary.modelVersion)) -}}
{{- $messages = append $messages (printf "models.%s.canary: set image and modelVersion to roll out a canary" $name) -}}
{{- end -}}
{{- if and $model.enabled $model.shadow.enabled (or (not $model.shadow.image) (not $model.shadow.modelVersion)) -}}
{{- $messages = append $messages (printf "models.%s.shadow: set image and modelVersion to shadow-score a candidate" $name) -}}
{{- end -}}
{{- if and $model.enabled $model.shadow.enabled (eq $model.shadow.modelVersion $model.modelVersion) -}}
{{- $messages = append $messages (printf "models.%s.shadow.modelVersion must differ from modelVersion, or the comparisons cannot tell the models apart" $name) -}}
{{- end -}}
{{- if and $model.enabled $model.canary.enabled (eq $model.canary.modelVersion $model.modelVersion) -}}
{{- $messages = append $messages (printf "models.%s.canary.modelVersion must differ from modelVersion, or the cache mixes both models" $name) -}}
{{- end -}}
{{- end -}}
{{- if eq $enabled 0 -}}
{{- $messages = append $messages "models: enable at least one model" -}}
{{- end -}}
{{- if gt (int .Values.predictor.minReplicas) (int .Values.predictor.maxReplicas) -}}
{{- $messages = append $messages "predictor: minReplicas must not exceed maxReplicas" -}}
{{- end -}}
{{- if gt (int .Values.transformer.minReplicas) (int .Values.transformer.maxReplicas) -}}
{{- $messages = append $messages "transformer: minReplicas must not exceed maxReplicas" -}}
{{- end -}}
{{- if and .Values.redis.enabled .Values.redis.tls.enabled (not .Values.redis.tls.secretName) -}}
{{- $messages = append $messages "redis.tls: set redis.tls.secretName (a Secret with tls.crt, tls.key and ca.crt)" -}}
{{- end -}}
{{- if and .Values.redis.enabled .Values.redis.external.cluster -}}
{{- $messages = append $messages "redis.external.cluster: the chart's own Redis is one node; set redis.enabled=false and redis.external.url to the cluster" -}}
{{- end -}}
{{- if and .Values.redis.enabled .Values.redis.external.caSecret -}}
{{- $messages = append $messages "redis.external.caSecret verifies an external Redis: set redis.enabled=false (our own Redis uses redis.tls.secretName)" -}}
{{- end -}}
{{- if and .Values.redis.external.caSecret (hasPrefix "redis://" .Values.redis.external.url) -}}
{{- $messages = append $messages "redis.external.caSecret needs TLS: use a rediss:// URL" -}}
{{- end -}}
{{- if and .Values.istio.jwt.enabled (or (not .Values.istio.jwt.issuer) (not .Values.istio.jwt.jwksUri)) -}}
{{- $messages = append $messages "istio.jwt: set issuer and jwksUri to require tokens" -}}
{{- end -}}
{{- if $messages -}}
{{- printf "\nVALUES VALIDATION:\n%s" (join "\n" $messages) | fail -}}
{{- end -}}
{{- end -}}

{{/* The InferenceServices of the enabled models, comma-separated: one each, and <name>-shadow where shadowed. */}}
{{- define "tc.enabledModels" -}}
{{- $names := list -}}
{{- range $name, $model := .Values.models -}}
{{- if $model.enabled -}}{{- $names = append $names $name -}}{{- end -}}
{{- if and $model.enabled $model.shadow.enabled -}}{{- $names = append $names (printf "%s-shadow" $name) -}}{{- end -}}
{{- end -}}
{{- join ", " $names -}}
{{- end -}}
