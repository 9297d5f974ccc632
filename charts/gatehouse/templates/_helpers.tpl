{{/* Names, labels and the pieces every pod of the chart shares. */}}

{{- define "gatehouse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every object's name (at most 40 characters, so that
     "<prefix>-controller-leader" and the like stay valid names). */}}
{{- define "gatehouse.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "gatehouse.controller.fullname" -}}{{ include "gatehouse.fullname" . }}-controller{{- end -}}
{{- define "gatehouse.gateway.fullname" -}}{{ include "gatehouse.fullname" . }}-gateway{{- end -}}
{{- define "gatehouse.speaker.fullname" -}}{{ include "gatehouse.fullname" . }}-speaker{{- end -}}

{{/* "true" when the speaker DaemonSet is rendered (Gatehouse is the load
     balancer and speaker.enabled), else empty. */}}
{{- define "gatehouse.speaker.enabled" -}}
{{- if and .Values.loadBalancer.enabled .Values.speaker.enabled -}}true{{- end -}}
{{- end -}}

{{/* A duration of the schema's form (250ms, 5s, 2m) in milliseconds. */}}
{{- define "gatehouse.durationMs" -}}
{{- $number := regexFind "^[0-9]+" . -}}
{{- $unit := trimPrefix $number . -}}
{{- if eq $unit "ms" -}}{{ int64 $number }}
{{- else if eq $unit "s" -}}{{ mul (int64 $number) 1000 }}
{{- else -}}{{ mul (int64 $number) 60000 }}
{{- end -}}
{{- end -}}

{{- define "gatehouse.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "gatehouse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of one component: include with (dict "ctx" $ "component" "controller"). */}}
{{- define "gatehouse.componentLabels" -}}
{{ include "gatehouse.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "gatehouse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gatehouse.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "gatehouse.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "gatehouse.leaseName" -}}
{{- default (printf "%s-leader" (include "gatehouse.controller.fullname" .)) .Values.controller.leaderElection.id -}}
{{- end -}}

{{/* The controller's stream Service, as gateways name it (and its certificate covers). */}}
{{- define "gatehouse.controller.host" -}}
{{- printf "%s.%s.svc" (include "gatehouse.controller.fullname" .) .Release.Namespace -}}
{{- end -}}

{{- define "gatehouse.controller.tlsSecret" -}}
{{- if .Values.snapshotTLS.generate -}}
{{- printf "%s-stream-tls" (include "gatehouse.controller.fullname" .) -}}
{{- else -}}
{{- required "snapshotTLS.existingSecrets.controller is required when snapshotTLS.generate is false" .Values.snapshotTLS.existingSecrets.controller -}}
{{- end -}}
{{- end -}}

{{- define "gatehouse.gateway.tlsSecret" -}}
{{- if .Values.snapshotTLS.generate -}}
{{- printf "%s-stream-tls" (include "gatehouse.gateway.fullname" .) -}}
{{- else -}}
{{- required "snapshotTLS.existingSecrets.gateway is required when snapshotTLS.generate is false" .Values.snapshotTLS.existingSecrets.gateway -}}
{{- end -}}
{{- end -}}

{{/* Where both components mount their stream certificate Secret. */}}
{{- define "gatehouse.tlsDir" -}}/etc/gatehouse/stream{{- end -}}

{{/* The loadBalancerClass of the gateway Service, or nothing. */}}
{{- define "gatehouse.gateway.loadBalancerClass" -}}
{{- if .Values.gateway.service.loadBalancerClass -}}
{{- .Values.gateway.service.loadBalancerClass -}}
{{- else if .Values.loadBalancer.enabled -}}
{{- .Values.loadBalancer.class -}}
{{- end -}}
{{- end -}}

{{/* Pod-level hardening, the same for every pod. */}}
{{- define "gatehouse.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level hardening: nothing may be gained, nothing written but
     the mounted volumes. */}}
{{- define "gatehouse.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Preferred anti-affinity: replicas of one component on different nodes. */}}
{{- define "gatehouse.antiAffinity" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "gatehouse.selectorLabels" . | nindent 12 }}
{{- end -}}

{{/* Refuse combinations the schema cannot express, with a message saying why. */}}
{{- define "gatehouse.validate" -}}
{{- if and .Values.gateway.autoscaling.enabled (eq .Values.gateway.kind "DaemonSet") -}}
{{- fail "gateway.autoscaling.enabled needs gateway.kind Deployment: a DaemonSet runs one gateway per node and cannot be scaled" -}}
{{- end -}}
{{- if and .Values.gateway.autoscaling.enabled (gt (int .Values.gateway.autoscaling.minReplicas) (int .Values.gateway.autoscaling.maxReplicas)) -}}
{{- fail "gateway.autoscaling.minReplicas must not be larger than gateway.autoscaling.maxReplicas" -}}
{{- end -}}
{{- if and .Values.loadBalancer.pools (not .Values.loadBalancer.enabled) -}}
{{- fail "loadBalancer.pools are only used when loadBalancer.enabled is true (Gatehouse assigning addresses)" -}}
{{- end -}}
{{- if and (not .Values.gateway.https) (ne (int .Values.gateway.hsts.maxAge) 0) -}}
{{- fail "gateway.hsts.maxAge needs gateway.https: HSTS is sent on HTTPS responses only" -}}
{{- end -}}
{{- if include "gatehouse.speaker.enabled" . -}}
{{- $s := .Values.speaker -}}
{{- if eq (int $s.heartbeatPort) (int $s.adminPort) -}}
{{- fail "speaker.heartbeatPort and speaker.adminPort must differ: both are ports of the node (host network)" -}}
{{- end -}}
{{- $interval := include "gatehouse.durationMs" $s.heartbeatInterval | int64 -}}
{{- $peer := include "gatehouse.durationMs" $s.peerTimeout | int64 -}}
{{- $contact := include "gatehouse.durationMs" $s.contactTimeout | int64 -}}
{{- if le (mul $peer 2) (add (mul $contact 2) (mul $interval 3)) -}}
{{- fail "speaker.peerTimeout must exceed speaker.contactTimeout by more than 1.5 speaker.heartbeatInterval: a speaker cut off from the others must stop announcing before another takes its addresses over" -}}
{{- end -}}
{{- end -}}
{{- end -}}
