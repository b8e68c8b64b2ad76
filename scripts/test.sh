#!/usr/bin/env bash
# The project's test command: install what is missing, build, run every test; then the same
# suite built with AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer included).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"

echo "== sanitizer build (ASan + UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSDINTERP_SANITIZE=ON -DSDINTERP_BUILD_BENCH=OFF
cmake --build build-asan -j "$(nproc)"
# The Python export tests (label export) drive the release binary through diffusers: not repeated.
ctest --test-dir build-asan --output-on-failure -j "$(nproc)" -LE export
