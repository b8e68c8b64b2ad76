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
# The Python export tests (label export) drive the release binary through diffusers, and the
# fuzzers' seed run (label fuzz) is built with the sanitizers already: neither is repeated.
# intercept_tls_get_addr=0: GCC 12's LeakSanitizer, scanning the dynamic TLS of libraries loaded
# with dlopen (the runtime module brings LibTorch and its OpenMP), read a garbage range and
# crashed at exit ("Tracer caught signal 11"). Without the interception dynamic TLS is not a leak
# root: that can only add reports, never hide a leak.
ASAN_OPTIONS=intercept_tls_get_addr=0 ctest --test-dir build-asan --output-on-failure -j "$(nproc)" -LE "export|fuzz"
