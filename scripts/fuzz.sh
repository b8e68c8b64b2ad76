#!/usr/bin/env bash
# Builds every libFuzzer target (fuzz/*_fuzz.cpp, with ASan and UBSan) in build-fuzz and runs each
# for N seconds: scripts/fuzz.sh [seconds] (default 60). Extra arguments go to every fuzzer.
# Corpora are kept in build-fuzz/corpus/<target>; crashes land in build-fuzz/artifacts/<target>.
# scripts/fuzz.sh 0 runs each target once over its seeds (fuzz/seeds/<target>, the inputs that once
# failed among them) without fuzzing: the test suite's Fuzz.SeedsRunClean. SDINTERP_FUZZ_BUILD
# names another build folder.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
build="${SDINTERP_FUZZ_BUILD:-build-fuzz}"

CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSDINTERP_FUZZ=ON -DSDINTERP_WITH_TORCH=OFF -DSDINTERP_BUILD_TESTS=OFF -DSDINTERP_BUILD_BENCH=OFF

targets=()
for src in fuzz/*_fuzz.cpp; do
  targets+=("$(basename "$src" .cpp)")
done
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"

status=0
for target in "${targets[@]}"; do
  seeds=()
  [ -d "fuzz/seeds/$target" ] && seeds=("fuzz/seeds/$target")
  if [ "$seconds" = 0 ]; then
    echo "== $target: its seeds"
    # -runs=0: the given inputs only (with none, the empty input once).
    if ! "$build/fuzz/$target" -runs=0 "${seeds[@]}" "$@"; then
      echo "== $target FAILED on a seed" >&2
      status=1
    fi
    continue
  fi
  corpus="$build/corpus/$target"
  artifacts="$build/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  echo "== $target: ${seconds}s"
  if ! "$build/fuzz/$target" "$corpus" "${seeds[@]}" -max_total_time="$seconds" \
      -artifact_prefix="$artifacts/" -print_final_stats=1 "$@"; then
    echo "== $target FAILED (see $artifacts)" >&2
    status=1
  fi
done
exit "$status"
