{{/* Names, labels and the scaling query, shared by every template. */}}

{{- define "quiver.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "quiver.labels" -}}
app.kubernetes.io/name: {{ default .Chart.Name .Values.nameOverride }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: quiver
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "quiver.serverSelector" -}}
app.kubernetes.io/name: {{ default .Chart.Name .Values.nameOverride }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "quiver.balancerSelector" -}}
app.kubernetes.io/name: {{ default .Chart.Name .Values.nameOverride }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: balancer
{{- end -}}

{{/* The headless Service of the servers: DNS for the balancer and for clients that balance themselves. */}}
{{- define "quiver.serversService" -}}
{{ include "quiver.fullname" . }}-servers
{{- end -}}

{{- define "quiver.serversFQDN" -}}
{{ include "quiver.serversService" . }}.{{ .Release.Namespace }}.svc.{{ .Values.balancer.dns.clusterDomain }}
{{- end -}}

{{/* Prometheus job names: the ServiceMonitor's (the Service name) and the plain scrape config's agree. */}}
{{- define "quiver.serversJob" -}}
{{ include "quiver.serversService" . }}
{{- end -}}
{{- define "quiver.balancerJob" -}}
{{ include "quiver.fullname" . }}-balancer
{{- end -}}

{{/* Label matchers that pick this release's servers out of everything Prometheus scrapes. */}}
{{- define "quiver.serverMatchers" -}}
job="{{ include "quiver.serversJob" . }}",namespace="{{ .Release.Namespace }}"
{{- end -}}

{{/*
The autoscaling signal: mean time a request waited in the servers' queues per model execution,
in milliseconds, over keda.window, across the whole pool (Triton's metric names, which quiver
serve exports). KEDA's trigger, the recording rule and the alerts all use this text.
*/}}
{{- define "quiver.scalingQuery" -}}
{{- $m := include "quiver.serverMatchers" . -}}
sum(rate(nv_inference_queue_duration_us{ {{- $m -}} }[{{ .Values.keda.window }}])) / (sum(rate(nv_inference_exec_count{ {{- $m -}} }[{{ .Values.keda.window }}]))*1000)
{{- end -}}

{{- define "quiver.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{- define "quiver.authSecret" -}}
{{ default (printf "%s-auth" (include "quiver.fullname" .)) .Values.auth.existingSecret }}
{{- end -}}
