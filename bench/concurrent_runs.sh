#!/usr/bin/env bash
# Several sdinterp processes at once on one CPU machine: LibTorch's OpenMP threads, spinning
# while idle, can make them slow each other down far beyond sharing the cores. sdinterp sets a
# short spin (GOMP_SPINCOUNT=1000) unless the user sets OMP_WAIT_POLICY or GOMP_SPINCOUNT; for
# comparison GOMP_SPINCOUNT=300000 restores libgomp's own default, OMP_WAIT_POLICY=PASSIVE no spin.
#
#   bench/concurrent_runs.sh [BUILD_DIR] [ROUNDS] [SIZE]    (defaults: build 3 64)
#
# For each setting: ROUNDS lone runs, then ROUNDS rounds of two runs started together, each a
# tiny-sd walk of 30 frames x 15 steps at SIZExSIZE; prints the generation time sdinterp reports.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$REPO/build}
rounds=${2:-3}
size=${3:-64}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
one() {  # $1 = seed; prints "N.NN s"
  "$build/sdinterp" generate --bundle "$REPO/models/tiny-sd" --prompt "a cat" --frames 30 --steps 15 \
    --height "$size" --width "$size" --seed "$1" -o "$work/$1.gif" --overwrite --quiet | grep -o '[0-9.]* s$'
}
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; tiny-sd, 30 frames x 15 steps, ${size}x${size}"
for setting in "sdinterp default (GOMP_SPINCOUNT=1000)" "libgomp default (GOMP_SPINCOUNT=300000)" \
  "passive (OMP_WAIT_POLICY=PASSIVE)"; do
  unset GOMP_SPINCOUNT OMP_WAIT_POLICY
  case $setting in
    libgomp*) export GOMP_SPINCOUNT=300000 ;;
    passive*) export OMP_WAIT_POLICY=PASSIVE ;;
  esac
  lone=() pairs=()
  for ((i = 0; i < rounds; i++)); do lone+=("$(one 1)"); done
  for ((i = 0; i < rounds; i++)); do
    pairs+=("$( (one 2 & one 3 & wait) | tr '\n' '/' | sed 's#/$##; s# s/# + #')")
  done
  echo "$setting"
  echo "  alone:       ${lone[*]}"
  echo "  two at once: $(printf '[%s] ' "${pairs[@]}")"
done
