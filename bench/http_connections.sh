#!/usr/bin/env bash
# quiver serve's HTTP front end under many kept-alive connections (issue 21), measured with wrk
# (Debian package): throughput and latency percentiles of KServe v2 inference (JSON, FP32[1,4]
# through the built-in identity backend, so the HTTP layer dominates) at 16 connections and at
# 1,000 and 5,000, for one or more server binaries (e.g. before / after a change), the points and
# binaries alternating so that machine noise hits all of them; median and range of RUNS runs each.
# wrk and the servers share the machine (wrk -t THREADS). Every server started is stopped on exit.
# Usage: [SECS=5] [RUNS=3] [CONNS="16 1000 5000"] [THREADS=2] bench/http_connections.sh [LABEL=QUIVER_BINARY...]
#        (default: after=build/src/cli/quiver)
# Run it under `/work/tools/cpu bench` on the shared build machine.
set -euo pipefail
SECS="${SECS:-5}" RUNS="${RUNS:-3}" CONNS="${CONNS:-16 1000 5000}" THREADS="${THREADS:-2}"
[ $# -gt 0 ] || set -- after=build/src/cli/quiver
command -v wrk > /dev/null || { echo "wrk is not installed (apt-get install wrk; scripts/setup lists it)" >&2; exit 1; }
labels=()
declare -A bin port
for arg in "$@"; do
  l="${arg%%=*}" b="${arg#*=}"
  [ -x "$b" ] || { echo "no $b: build first" >&2; exit 1; }
  labels+=("$l"); bin[$l]="$b"
done
ulimit -n "$(ulimit -Hn)"
max_conn=0
for c in $CONNS; do if [ "$c" -gt "$max_conn" ]; then max_conn=$c; fi; done
if [ "$(ulimit -n)" -lt $((max_conn + 64)) ]; then
  echo "NOT RUN: wrk needs $((max_conn + 64)) open files for $max_conn connections; the hard limit is $(ulimit -Hn)" >&2
  exit 1
fi

work=$(mktemp -d /tmp/quiver-http-conns-XXXXXX)
servers=()
cleanup() {
  for p in "${servers[@]}"; do kill "$p" 2> /dev/null || true; done
  for p in "${servers[@]}"; do wait "$p" 2> /dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$work/repo/ident/1"
cat > "$work/repo/ident/config.pbtxt" << 'EOF'
name: "ident"
backend: "identity"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
instance_group [ { count: 2 kind: KIND_CPU } ]
EOF
cat > "$work/post.lua" << 'EOF'
wrk.method = "POST"
wrk.body = '{"inputs":[{"name":"INPUT0","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}'
wrk.headers["Content-Type"] = "application/json"
EOF

for l in "${labels[@]}"; do
  # Stopped by the trap; killed with this script if that is killed itself (setpriv, util-linux).
  setpriv --pdeathsig KILL "${bin[$l]}" serve --model-repository "$work/repo" --http-port 0 --grpc-port -1 --metrics-port -1 \
    > "$work/ready.$l" 2> "$work/server.$l.log" &
  servers+=($!)
  for _ in $(seq 100); do grep -q "quiver serve ready" "$work/ready.$l" 2> /dev/null && break; sleep 0.1; done
  port[$l]=$(sed -n 's/.*http=[^ ]*:\([0-9]*\).*/\1/p' "$work/ready.$l")
  [ -n "${port[$l]}" ] || { cat "$work/server.$l.log" >&2; exit 1; }
  echo "# $l: ${bin[$l]} HTTP on :${port[$l]}"
  grep "HTTP on" "$work/server.$l.log" | head -1 || true
done
echo "# wrk -t$THREADS, ${SECS}s per point, $RUNS runs; $(nproc) cores"
# wrk prints latencies as 1.23ms / 456.00us / 1.20s: in microseconds
to_us() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); print v} else if (v ~ /ms$/) {sub(/ms/,"",v); print v*1000} else if (v ~ /s$/) {sub(/s/,"",v); print v*1000000}}'; }
for l in "${labels[@]}"; do  # warm
  wrk -t"$THREADS" -c16 -d1s -s "$work/post.lua" "http://127.0.0.1:${port[$l]}/v2/models/ident/infer" > /dev/null
done
declare -A rps p50 p99 errs
for run in $(seq "$RUNS"); do
  for c in $CONNS; do
    for l in "${labels[@]}"; do
      k="$l/$c"
      out=$(wrk -t"$THREADS" -c"$c" -d"${SECS}s" --timeout 10s --latency -s "$work/post.lua" \
        "http://127.0.0.1:${port[$l]}/v2/models/ident/infer")
      r=$(awk '/^Requests\/sec/ {print $2}' <<< "$out")
      l50=$(awk '$1=="50%" {print $2}' <<< "$out" | to_us)
      l99=$(awk '$1=="99%" {print $2}' <<< "$out" | to_us)
      e=$(awk '/Non-2xx|Socket errors/ {print}' <<< "$out" | tr '\n' ' ')
      rps[$k]+="$r "; p50[$k]+="$l50 "; p99[$k]+="$l99 "; errs[$k]+="${e:+run $run: $e}"
      echo "run $run $l c=$c: $r req/s, p50 ${l50} us, p99 ${l99} us ${e}"
    done
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (!NR) {print "-"; exit} m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.0f (%.0f-%.0f)", m, a[1], a[NR]}'; }
echo
echo "| server | connections | req/s median (min-max) | p50 µs | p99 µs | errors |"
echo "|---|---|---|---|---|---|"
for c in $CONNS; do
  for l in "${labels[@]}"; do
    k="$l/$c"
    echo "| $l | $c | $(median <<< "${rps[$k]}") | $(median <<< "${p50[$k]}") | $(median <<< "${p99[$k]}") | ${errs[$k]:-none} |"
  done
done
echo
for l in "${labels[@]}"; do grep -E "refused|deadline" "$work/server.$l.log" | sed "s/^/$l: /" || true; done
