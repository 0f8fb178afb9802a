#!/usr/bin/env bash
# quiver compile --weights source vs --weights file, per model, both forms in the same run:
# - build: `quiver compile` + g++ as bench/aot_compile_time.sh builds (NAME.cpp + NAME_entry.cpp at OPT
#   -march=native; the source form's NAME_weights.cpp at -O0 at the same time on the other core), wall s;
# - load: bench/aot_memory in a fresh process per sample (quiver::load_model of libNAME.so: dlopen, the
#   backend's SHA-256 of the .so, the file form's mapping and check of NAME.weights; then the first run
#   at batch 1 on test_data_set_0), ROUNDS samples per form alternating: median [min..max] of the wall
#   time and of the RSS gained.
# Usage: bench/aot_weights_form.sh MODEL [BUILD_DIR] [OPT] [ROUNDS]   (default: build -O2 7)
# Run it under /work/tools/cpu bench for figures you record (one model per call keeps each call short).
set -euo pipefail
cd "$(dirname "$0")/.."
m="$1"
build="${2:-build}"
opt="${3:--O2}"
rounds="${4:-7}"
hep=../shared/models/hep
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
now() { date +%s.%N; }
flags="-std=c++17 -fPIC -Wall -Wextra -march=native"
declare -A build_s lib_mb file_mb
for form in source file; do
  d="$out/$form"
  t0=$(now)
  "$build/src/cli/quiver" compile "$hep/$m/model.onnx" -o "$d" --name "$m" --weights "$form" > "$out/$form.log"
  (
    cd "$d"
    if [ "$form" = source ]; then g++ $flags -O0 -c "${m}_weights.cpp" -o "${m}_weights.o" & fi
    g++ $flags $opt -fno-math-errno -fno-trapping-math -c "$m.cpp" -o "$m.o"
    g++ $flags -c "${m}_entry.cpp" -o "${m}_entry.o"
    wait
    g++ -shared -o "lib$m.so" "$m.o" "${m}_entry.o" $([ "$form" = source ] && echo "${m}_weights.o")
  )
  t1=$(now)
  build_s[$form]=$(bc <<< "$t1 - $t0")
  lib_mb[$form]=$(stat -c %s "$d/lib$m.so" | awk '{printf "%.2f", $1 / 1e6}')
  file_mb[$form]=$([ -f "$d/$m.weights" ] && stat -c %s "$d/$m.weights" | awk '{printf "%.2f", $1 / 1e6}' || echo "-")
done
for ((r = 0; r < rounds; r++)); do
  for form in source file; do
    "$build/bench/aot_memory" "$out/$form/lib$m.so" "$hep/$m/test_data_set_0" 1 >> "$out/$form.samples"
  done
done
stats() {  # median [min..max] of one JSON field
  python3 -c "
import json, statistics, sys
v = sorted(json.loads(l)['$2'] * $3 for l in open('$1'))
print('%.${4}f [%.${4}f..%.${4}f]' % (statistics.median(v), v[0], v[-1]))"
}
printf "| model | form | compile + build s (%s) | libNAME.so MB | NAME.weights MB | load + first run ms | RSS gained MiB |\n" "$opt"
printf "|---|---|---|---|---|---|---|\n"
for form in source file; do
  printf "| %s | %s | %.1f | %s | %s | %s | %s |\n" "$m" "$form" "${build_s[$form]}" "${lib_mb[$form]}" "${file_mb[$form]}" \
    "$(stats "$out/$form.samples" load_first_run_us 0.001 2)" "$(stats "$out/$form.samples" rss_gain_bytes "1/1048576" 2)"
done
