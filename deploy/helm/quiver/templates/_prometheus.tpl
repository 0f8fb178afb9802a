{{/*
Monitoring shared by the Prometheus Operator objects, the plain prometheus.yml ConfigMap and the
loopback test: the scaling metric's recording rule and the alerts (quiver.prometheusRuleGroups),
and a complete prometheus.yml (quiver.prometheusConfig).
*/}}
{{- define "quiver.prometheusRuleGroups" -}}
{{- $m := include "quiver.serverMatchers" . -}}
{{- $a := .Values.monitoring.alerts -}}
- name: {{ include "quiver.fullname" . }}.scaling
  interval: {{ .Values.monitoring.scrapeInterval }}
  rules:
    # The KEDA trigger's query, recorded: ms of queueing per model execution over the pool.
    - record: quiver:queue_ms_per_exec
      expr: {{ include "quiver.scalingQuery" . | quote }}
      labels:
        job: {{ include "quiver.serversJob" . }}
        namespace: {{ .Release.Namespace }}
- name: {{ include "quiver.fullname" . }}.alerts
  rules:
    - alert: QuiverPoolSaturated
      expr: quiver:queue_ms_per_exec{ {{- $m -}} } > {{ .Values.keda.threshold }} and on() count(up{ {{- $m -}} } == 1) >= {{ .Values.keda.maxReplicas }}
      for: {{ $a.saturatedFor }}
      labels:
        severity: warning
      annotations:
        summary: Quiver pool at its maximum size and still queueing
        description: >-
          Mean queue time per execution is {{ "{{ $value | humanize }}" }} ms (threshold {{ .Values.keda.threshold }} ms)
          with keda.maxReplicas={{ .Values.keda.maxReplicas }} servers up: raise maxReplicas or add nodes.
    - alert: QuiverServerDown
      expr: up{ {{- $m -}} } == 0
      for: {{ $a.serverDownFor }}
      labels:
        severity: warning
      annotations:
        summary: "Quiver server {{ "{{ $labels.instance }}" }} does not answer metrics scrapes"
    - alert: QuiverInferenceFailures
      expr: sum by (model) (rate(nv_inference_request_failure{ {{- $m -}} }[5m])) > {{ $a.failureRate }}
      for: 5m
      labels:
        severity: warning
      annotations:
        summary: "Model {{ "{{ $labels.model }}" }} fails {{ "{{ $value | humanize }}" }} requests/s"
        description: See nv_inference_request_failure by reason (REJECTED = queue full, BACKEND = model error, CANCELED, OTHER).
    {{- if .Values.balancer.enabled }}
    - alert: QuiverBalancerNoServers
      expr: haproxy_backend_active_servers{job="{{ include "quiver.balancerJob" . }}",proxy="servers_grpc"} == 0
      for: 1m
      labels:
        severity: critical
      annotations:
        summary: The Quiver balancer has no healthy server; every request fails
    {{- end }}
{{- end -}}

{{- define "quiver.prometheusConfig" -}}
{{- $st := .Values.monitoring.staticTargets -}}
global:
  scrape_interval: {{ .Values.monitoring.scrapeInterval }}
  evaluation_interval: {{ .Values.monitoring.scrapeInterval }}
rule_files:
  - {{ .Values.monitoring.scrapeConfig.rulesFile }}
scrape_configs:
  - job_name: {{ include "quiver.serversJob" . }}
    metrics_path: /metrics
    {{- if $st.servers }}
    static_configs:
      - targets: {{ toJson $st.servers }}
        labels:
          namespace: {{ .Release.Namespace }}
    {{- else }}
    kubernetes_sd_configs:
      - role: endpoints
        namespaces:
          names: [{{ .Release.Namespace }}]
    relabel_configs:
      - source_labels: [__meta_kubernetes_service_name, __meta_kubernetes_endpoint_port_name]
        regex: {{ include "quiver.serversService" . }};metrics
        action: keep
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
    {{- end }}
  {{- if .Values.balancer.enabled }}
  - job_name: {{ include "quiver.balancerJob" . }}
    metrics_path: /metrics
    {{- if $st.balancer }}
    static_configs:
      - targets: {{ toJson $st.balancer }}
        labels:
          namespace: {{ .Release.Namespace }}
    {{- else }}
    kubernetes_sd_configs:
      - role: endpoints
        namespaces:
          names: [{{ .Release.Namespace }}]
    relabel_configs:
      - source_labels: [__meta_kubernetes_service_name, __meta_kubernetes_endpoint_port_name]
        regex: {{ include "quiver.fullname" . }};stats
        action: keep
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
    {{- end }}
  {{- end }}
{{- end -}}

{{- define "quiver.prometheusRulesFile" -}}
groups:
  {{- include "quiver.prometheusRuleGroups" . | nindent 2 }}
{{- end -}}
