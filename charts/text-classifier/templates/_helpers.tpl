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
{{- if and .Values.istio.jwt.enabled (or (not .Values.istio.jwt.issuer) (not .Values.istio.jwt.jwksUri)) -}}
{{- $messages = append $messages "istio.jwt: set issuer and jwksUri to require tokens" -}}
{{- end -}}
{{- if $messages -}}
{{- printf "\nVALUES VALIDATION:\n%s" (join "\n" $messages) | fail -}}
{{- end -}}
{{- end -}}

{{/* The enabled models' names, comma-separated (one InferenceService each). */}}
{{- define "tc.enabledModels" -}}
{{- $names := list -}}
{{- range $name, $model := .Values.models -}}
{{- if $model.enabled -}}{{- $names = append $names $name -}}{{- end -}}
{{- end -}}
{{- join ", " $names -}}
{{- end -}}
