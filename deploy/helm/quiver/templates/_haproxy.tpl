{{/*
The balancer's haproxy.cfg. One template for both places it runs: in the cluster (servers found
in the headless Service's DNS records) and in deploy/loopback/run (balancer.staticServers).
gRPC is HTTP/2: in `mode http` HAProxy balances every request (stream) on its own, so one client
connection spreads over all servers; a TCP balancer or a plain Service would pin it to one pod.
*/}}
{{- define "quiver.haproxyConfig" -}}
{{- $b := .Values.balancer -}}
{{- $l := $b.limits -}}
{{- $s := .Values.server -}}
{{- $bind := $b.bindAddress -}}
{{- $static := $b.staticServers -}}
global
    maxconn {{ int $l.maxConnections }}
    nbthread {{ $b.threads }}
    stats socket {{ $b.statsSocket }} mode 600 level admin
    tune.bufsize {{ int $b.bufferBytes }}
    tune.h2.max-concurrent-streams {{ $l.maxConcurrentStreams }}
    hard-stop-after 30s
    log stdout format raw local0 info

defaults
    mode http
    log global
    option httplog
    # Only errors and retries are logged; a log line per request costs more than the request.
    option dontlog-normal
    timeout connect {{ $b.timeouts.connect }}
    timeout client {{ $b.timeouts.client }}
    timeout server {{ $b.timeouts.server }}
    timeout queue {{ $b.timeouts.queue }}
    timeout http-request 10s
    timeout http-keep-alive {{ $b.timeouts.client }}
    timeout check 2s
    # A request that failed before any answer (connection refused, server died mid-request,
    # empty response) goes to another server; the request stays in the buffer until answered.
    retries {{ $b.retries }}
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
    # Requests of all clients share the HTTP/2 connections to each server.
    http-reuse always
    {{- if not $static }}
    default-server init-addr none
    {{- end }}

{{- if not $static }}

resolvers cluster
    parse-resolv-conf
    hold valid {{ $b.dns.holdValid }}
    hold obsolete 10s
    accepted_payload_size 8192
{{- end }}

{{- if or $l.perClientConnections $l.perClientRequestsPerSecond }}

backend per_client
    stick-table type ipv6 size 1m expire 60s store conn_cur,http_req_rate(10s)
{{- end }}

frontend grpc
    {{- if .Values.tls.enabled }}
    bind {{ $bind }}:{{ $b.ports.grpc }} ssl crt /etc/quiver-balancer/tls/tls.pem alpn h2
    {{- else }}
    bind {{ $bind }}:{{ $b.ports.grpc }} proto h2
    {{- end }}
    maxconn {{ int $l.maxConnections }}
    {{- include "quiver.haproxyLimits" (dict "l" $l "grpc" true) }}
    default_backend servers_grpc

frontend http
    bind {{ $bind }}:{{ $b.ports.http }}
    maxconn {{ int $l.maxConnections }}
    {{- include "quiver.haproxyLimits" (dict "l" $l "grpc" false) }}
    default_backend servers_http

frontend stats
    bind {{ $bind }}:{{ $b.ports.stats }}
    http-request use-service prometheus-exporter if { path /metrics }
    stats enable
    stats uri /stats
    stats refresh 5s

{{- range $proto := list "grpc" "http" }}

backend servers_{{ $proto }}
    balance {{ $b.algorithm }}
    # Active check: KServe v2 readiness on each server's HTTP port (open without a token).
    option httpchk
    http-check send meth GET uri /v2/health/ready
    http-check expect status 200
    {{- $opts := printf "check inter %s fastinter 250ms fall %d rise %d observe layer4 error-limit 5 on-error fastinter on-marked-down shutdown-sessions" $b.healthCheck.interval (int $b.healthCheck.fall) (int $b.healthCheck.rise) }}
    {{- if $l.maxRequestsPerServer }}
    {{- $opts = printf "%s maxconn %d" $opts (int $l.maxRequestsPerServer) }}
    {{- end }}
    {{- if eq $proto "grpc" }}
    {{- if and $.Values.tls.enabled $.Values.tls.backend }}
    {{- $opts = printf "%s ssl no-check-ssl check-proto h1 alpn h2 %s" $opts (ternary "verify required ca-file /etc/quiver-balancer/tls/ca.crt" "verify none" $.Values.tls.verifyBackend) }}
    {{- else }}
    {{- $opts = printf "%s proto h2 check-proto h1" $opts }}
    {{- end }}
    {{- end }}
    {{- if $static }}
    {{- range $static }}
    server {{ .name }} {{ .address }}:{{ ternary .grpcPort .httpPort (eq $proto "grpc") }} {{ $opts }} port {{ .httpPort }}
    {{- end }}
    {{- else }}
    server-template srv 1-{{ $b.maxServers }} {{ include "quiver.serversFQDN" $ }}:{{ ternary $s.ports.grpc $s.ports.http (eq $proto "grpc") }} {{ $opts }} port {{ $s.ports.http }} resolvers cluster resolve-prefer ipv4
    {{- end }}
{{- end }}
{{ end -}}

{{/* Per-client connection and request-rate limits of one frontend. */}}
{{- define "quiver.haproxyLimits" -}}
{{- $l := .l -}}
{{- if or $l.perClientConnections $l.perClientRequestsPerSecond }}
    tcp-request connection track-sc0 src table per_client
{{- end }}
{{- if $l.perClientConnections }}
    tcp-request connection reject if { sc0_conn_cur(per_client) gt {{ $l.perClientConnections }} }
{{- end }}
{{- if $l.perClientRequestsPerSecond }}
{{- $cond := printf "{ sc0_http_req_rate(per_client) gt %d }" (mul 10 $l.perClientRequestsPerSecond) }}
{{- if .grpc }}
    # Health RPCs pass: a client that cannot probe readiness would take the balancer for dead.
    acl health path_end /ServerLive /ServerReady /ModelReady
{{- else }}
    acl health path_beg /v2/health
    acl health path_end /ready
{{- end }}
{{- $cond = printf "!health %s" $cond }}
{{- if .grpc }}
    # A trailers-only gRPC answer: clients see RESOURCE_EXHAUSTED and the message (HTTP 429 would read as UNAVAILABLE).
    http-request return status 200 hdr grpc-status 8 hdr grpc-message "quiver balancer: request rate limit exceeded" if {{ $cond }}
{{- else }}
    http-request deny deny_status 429 if {{ $cond }}
{{- end }}
{{- end }}
{{- end -}}
