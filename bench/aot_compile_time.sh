#!/usr/bin/env bash
# quiver compile: wall time to compile each model to C++ (`quiver compile`) and to build the result with
# g++ the way `quiver compile --check` does (NAME.cpp + NAME_entry.cpp at OPT with -march=native, the
# constant-data NAME_weights.cpp at -O0, the two compiled at once on 2 cores, then linked), per model,
# plus each translation unit's own time (the weights TU is the part a mapped .weights file would save).
# Usage: bench/aot_compile_time.sh [BUILD_DIR] [OPT] [MODEL ...]   (default: build -O2, every HEP model)
# Run it under /work/tools/cpu bench for figures you record.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
opt="${2:--O2}"
shift 2 2> /dev/null || shift $#
hep=../shared/models/hep
models=("$@")
[ ${#models[@]} -gt 0 ] || models=($(ls "$hep"))
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
now() { date +%s.%N; }
flags="-std=c++17 -fPIC -Wall -Wextra -march=native"
printf "| model | quiver compile s | code TU (%s) s | weights TU (-O0) s | build wall s | compile + build s | weights MB |\n" "$opt"
printf "|---|---|---|---|---|---|---|\n"
for m in "${models[@]}"; do
  t0=$(now)
  if ! "$build/src/cli/quiver" compile "$hep/$m/model.onnx" -o "$out/$m" --name "$m" > "$out/$m.log" 2>&1; then
    printf "| %s | refused | | | | | |\n" "$m"
    continue
  fi
  t1=$(now)
  (
    cd "$out/$m"
    { s=$(now); g++ $flags $opt -fno-math-errno -fno-trapping-math -c "$m.cpp" -o "$m.o" &&
      g++ $flags -c "${m}_entry.cpp" -o "${m}_entry.o"; e=$(now); echo "$s $e" > code.t; } &
    { s=$(now); g++ $flags -O0 -c "${m}_weights.cpp" -o "${m}_weights.o"; e=$(now); echo "$s $e" > weights.t; } &
    wait
    g++ -shared -o "lib$m.so" "$m.o" "${m}_entry.o" "${m}_weights.o"
  )
  t2=$(now)
  code=$(awk '{printf "%.1f", $2 - $1}' "$out/$m/code.t")
  wts=$(awk '{printf "%.1f", $2 - $1}' "$out/$m/weights.t")
  mb=$(awk '{printf "%.2f", $1 / 1e6}' <<< "$(grep -o '[0-9]* bytes of weights' "$out/$m.log" | cut -d' ' -f1)")
  printf "| %s | %.2f | %s | %s | %.1f | %.1f | %s |\n" "$m" "$(bc <<< "$t1 - $t0")" "$code" "$wts" \
    "$(bc <<< "$t2 - $t1")" "$(bc <<< "$t2 - $t0")" "$mb"
done
