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

{{- define "tc.cacheKeySecret" -}}
{{- .Values.transformer.cacheKey.existingSecret | default (printf "%s-cache-key" (include "tc.name" .)) -}}
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
{{- if and $model.enabled $model.shadow.enabled (eq $model.shadow.via "mirror") (ne $.Values.deploymentMode "Standard") -}}
{{- $messages = append $messages (printf "models.%s.shadow.via=mirror needs deploymentMode=Standard: in Knative mode Istio's \"-shadow\" Host suffix breaks Knative's Host routing (use via=transformer)" $name) -}}
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
{{- if ge (int .Values.transformer.predictorTimeoutSeconds) (int .Values.transformer.timeout) -}}
{{- $messages = append $messages "transformer: predictorTimeoutSeconds must be below timeout, or the route gives up before the transformer can answer" -}}
{{- end -}}
{{- if le (float64 .Values.transformer.predictorTimeoutSeconds) (float64 .Values.predictor.requestTimeoutSeconds) -}}
{{- $messages = append $messages (printf "transformer: predictorTimeoutSeconds (%v) must exceed predictor.requestTimeoutSeconds (%v), or the two 504s race (the transformer refuses to serve: runtime/settings.py)" .Values.transformer.predictorTimeoutSeconds .Values.predictor.requestTimeoutSeconds) -}}
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
{{- if and .Values.istio.jwt.enabled .Values.helmTest.enabled (not .Values.helmTest.tokenSecret) -}}
{{- $messages = append $messages "helmTest: with istio.jwt.enabled, set helmTest.tokenSecret (a Secret with a token) or helmTest.enabled=false: the route refuses the test's request without one" -}}
{{- end -}}
{{- if and .Values.istio.jwt.enabled (or (not .Values.istio.jwt.issuer) (not .Values.istio.jwt.jwksUri)) -}}
{{- $messages = append $messages "istio.jwt: set issuer and jwksUri to require tokens" -}}
{{- end -}}
{{- if and .Values.istio.jwt.enabled (not .Values.istio.jwt.audiences) -}}
{{- /* without audiences Envoy's jwt_authn accepts a token the issuer minted for any other service */ -}}
{{- $messages = append $messages "istio.jwt: set audiences (the aud this service's tokens carry): without them a token the issuer minted for any other service is accepted" -}}
{{- end -}}
{{- if $messages -}}
{{- printf "\nVALUES VALIDATION:\n%s" (join "\n" $messages) | fail -}}
{{- end -}}
{{- end -}}

{{/* The InferenceServices of the enabled models, comma-separated: one each, <name>-shadow where shadowed, <name>-canary for a Standard-mode canary. */}}
{{- define "tc.enabledModels" -}}
{{- $names := list -}}
{{- range $name, $model := .Values.models -}}
{{- if $model.enabled -}}{{- $names = append $names $name -}}{{- end -}}
{{- if and $model.enabled $model.shadow.enabled -}}{{- $names = append $names (printf "%s-shadow" $name) -}}{{- end -}}
{{- if and $model.enabled $model.canary.enabled (eq $.Values.deploymentMode "Standard") -}}{{- $names = append $names (printf "%s-canary" $name) -}}{{- end -}}
{{- end -}}
{{- join ", " $names -}}
{{- end -}}

{{/*
Deployment mode (docs/deployment-modes.md). The InferenceService's annotations: KServe's mode and
autoscaler class, and the canary's cache pin.
dict: root, pin (the model version the transformer reads cached answers of; "": none).
*/}}
{{- define "tc.isvcAnnotations" -}}
{{- if eq .root.Values.deploymentMode "Standard" -}}
# Standard mode (KServe v0.20's name for RawDeployment): a Deployment, a Service and an
# autoscaler per component; no Knative, no revisions, no scale to zero.
serving.kserve.io/deploymentMode: Standard
# hpa: CPU and memory utilization; keda: the predictor's batcher queue, from Prometheus.
serving.kserve.io/autoscalerClass: {{ .root.Values.standard.autoscalerClass }}
{{- else -}}
# Knative mode: revisions (for canary traffic splits) and scale-to-zero.
serving.kserve.io/deploymentMode: Knative
# Knative's KPA (the only class that scales to zero): the predictor on rps, the transformer on in-flight requests.
autoscaling.knative.dev/class: kpa.autoscaling.knative.dev
{{- end }}
{{- with .pin }}
# CANARY: the transformer reads cached answers of this version only (its CACHE_MODEL_VERSION
# comes from this annotation); promoting by patch sets it to "" (rollout.verdict).
{{ include "tc.pinAnnotation" $.root }}: {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "tc.pinAnnotation" -}}text-classifier.kserve.io/cache-model-version{{- end -}}

{{/*
Knative's autoscaler, told what the comments of the values say (Knative mode only; KServe copies a
component's annotations to its revisions):
- target-utilization-percentage 100: scaleTarget is the target itself, for rps as for concurrency;
  Knative's default 0.7 would make 8 in flight a target of 5.6, and the predictor's rps target
  (already 70% of its capacity) 70% of that again (knative/serving v1.21.1
  pkg/reconciler/autoscaling/resources/target.go ResolveMetricTarget: config target-utilization for
  rps, container-concurrency-target-percentage for concurrency, this annotation over either).
- target-burst-capacity 0: the activator leaves the request path once a pod runs; it stays in it
  only at zero pods, to hold requests through the cold start.
*/}}
{{- define "tc.knativeScalingAnnotations" -}}
{{- if ne .Values.deploymentMode "Standard" -}}
autoscaling.knative.dev/target-utilization-percentage: "100"
autoscaling.knative.dev/target-burst-capacity: "0"
{{- end -}}
{{- end -}}

{{/*
Standard mode's autoscaling of one component (KServe v0.20: hpa_reconciler.go getHPAMetrics,
keda_reconciler.go getKedaMetrics). dict: root, isvc, component.
*/}}
{{- define "tc.standardScaling" -}}
{{- $s := .root.Values.standard -}}
autoScaling:
  metrics:
    {{- if and (eq $s.autoscalerClass "keda") (eq .component "predictor") }}
    # The batcher's backlog, summed over the pods: KEDA adds a pod per queueTextsPerPod texts
    # waiting (its Prometheus scaler divides the query by the threshold). CPU saturates first and
    # says nothing of latency; the queue is where requests wait.
    - type: External
      external:
        metric:
          backend: prometheus
          serverAddress: {{ $s.keda.prometheusAddress }}
          query: {{ printf "sum(predictor_queue_texts{namespace=%q, isvc=%q, component=\"predictor\"})" .root.Release.Namespace .isvc | quote }}
        target: {type: Value, value: {{ $s.keda.queueTextsPerPod | quote }}}
    {{- else }}
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: {{ $s.hpa.cpuUtilization }}}}
    - type: Resource
      resource: {name: memory, target: {type: Utilization, averageUtilization: {{ $s.hpa.memoryUtilization }}}}
    {{- end }}
{{- end -}}

{{/* The transformer's service account: the identity the predictors' AuthorizationPolicy admits. */}}
{{/*
The header Istio writes the caller's verified JWT claim to (istio.jwt.clientClaim), which the
transformer's rate limit keys on; the gateway strips a client's own copy of it.
*/}}
{{- define "tc.verifiedClientHeader" -}}
x-tc-verified-client
{{- end -}}

{{- define "tc.transformerServiceAccount" -}}
{{- .Values.transformer.serviceAccountName | default (printf "%s-transformer" (include "tc.name" .)) -}}
{{- end -}}

{{/*
The label of every pod that runs the transformer: its own component's, or the predictor's pod in the
collocated layout, which KServe labels component=predictor whatever we set (predictor.go buildObjectMeta).
JWT, Redis access and scraping select it.
*/}}
{{- define "tc.transformerPodLabels" -}}
app.kubernetes.io/component: transformer
{{- end -}}

{{/*
Placement of a component's pods (placement.enabled): spread over zones and nodes, prefer the
on-demand node group (the floor), tolerate the spot group's taint (bursts). In Knative mode these
fields need the podspec-affinity, -tolerations and -topologyspreadconstraints flags
(cluster/knative-serving.yaml). dict: root, isvc, component.
*/}}
{{- define "tc.placement" -}}
{{- with .root.Values.placement -}}
{{- if .enabled -}}
{{- $selector := dict "serving.kserve.io/inferenceservice" $.isvc "component" $.component -}}
affinity:
  nodeAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        preference:
          matchExpressions:
            {{- range $key, $value := .onDemand.labels }}
            - {key: {{ $key }}, operator: In, values: [{{ $value | quote }}]}
            {{- end }}
tolerations:
  - {key: {{ .spot.taintKey }}, operator: Equal, value: {{ .spot.taintValue | quote }}, effect: NoSchedule}
topologySpreadConstraints:
  - maxSkew: {{ .zoneSpreadMaxSkew }}
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
    labelSelector: {matchLabels: {{ toJson $selector }}}
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector: {matchLabels: {{ toJson $selector }}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
A service's settings, by setting name (its values block predictor.settings / transformer.settings, written
from the settings declarations by scripts/chart_settings.py, merged with what the chart's own keys pass), as
env vars under the service's prefix: PREDICTOR_MAX_TEXTS, TRANSFORMER_FAST_PATH, ... (runtime/settings.py
reads the prefixed name first). null: not set, the code's own default. Numbers go through toJson: quote
would write a large one as 8.388608e+06.
Then the service's extraEnv, last, so that an entry there overrides one above (the last of a name wins).
dict: prefix, settings, extraEnv.
*/}}
{{- define "tc.settingsEnv" -}}
{{- range $name, $value := .settings }}
{{- if not (kindIs "invalid" $value) }}
- name: {{ printf "%s%s" $.prefix (upper $name) }}
  value: {{ ternary $value (toJson $value) (kindIs "string" $value) | quote }}
{{- end }}
{{- end }}
{{- with .extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}
