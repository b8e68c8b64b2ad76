#!/usr/bin/env bash
# Builds every libFuzzer target (fuzz/*_fuzz.cpp, with ASan and UBSan) in build-fuzz and runs each
# for N seconds: scripts/fuzz.sh [seconds] (default 60). Extra arguments go to every fuzzer.
# Corpora are kept in build-fuzz/corpus/<target>; crashes land in build-fuzz/artifacts/<target>.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true

CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSDINTERP_FUZZ=ON -DSDINTERP_WITH_TORCH=OFF -DSDINTERP_BUILD_TESTS=OFF -DSDINTERP_BUILD_BENCH=OFF

targets=()
for src in fuzz/*_fuzz.cpp; do
  targets+=("$(basename "$src" .cpp)")
done
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]}"

status=0
for target in "${targets[@]}"; do
  corpus="build-fuzz/corpus/$target"
  artifacts="build-fuzz/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  echo "== $target: ${seconds}s"
  seeds=()
  [ -d "fuzz/seeds/$target" ] && seeds=("fuzz/seeds/$target")
  if ! "build-fuzz/fuzz/$target" "$corpus" "${seeds[@]}" -max_total_time="$seconds" \
      -artifact_prefix="$artifacts/" -print_final_stats=1 "$@"; then
    echo "== $target FAILED (see $artifacts)" >&2
    status=1
  fi
done
exit "$status"
