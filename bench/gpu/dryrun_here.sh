#!/usr/bin/env bash
# Dry run of `bench/gpu_compare.sh run` on this (CPU, Debian 12) machine, proving that the carried
# .debs suffice: in a private mount namespace, every file of the carried packages (and of FFmpeg's
# runtime libraries and pkg-config) that this machine has installed is hidden behind /dev/null, so
# the build and the binary can only use what bench/gpu/debs provides. Nothing outside the namespace
# changes. Needs root (unshare -m).
#
#   bench/gpu/dryrun_here.sh                 unpack + configure + build (run --build-only)
#   bench/gpu/dryrun_here.sh -- ARGS         the whole run step with gpu_compare.py ARGS,
#                                            e.g. -- --smoke --device cpu
# Environment: GPU_WORK (default /tmp/sdinterp-gpu-dry), OUT (default /tmp/sdinterp-gpu-dry-out),
# PYTHON (default .venv/bin/python), JOBS (default 2).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
if [ "${1:-}" != "--inside" ]; then
  exec unshare -m --propagation private "$0" --inside "$@"
fi
shift
hide=(libcli11-dev nlohmann-json3-dev libgif-dev libgif7 libstb-dev libstb0 libutf8proc-dev libutf8proc2
  libwebp-dev libwebp7 libwebpmux3 libwebpdemux2 pkgconf pkgconf-bin libpkgconf3 pkg-config
  libavcodec-dev libavformat-dev libswscale-dev libavutil-dev libswresample-dev
  libavcodec59 libavformat59 libswscale6 libavutil57 libswresample4)
n=0
for p in "${hide[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || continue
  while read -r f; do
    if [ -f "$f" ] && [ ! -L "$f" ]; then mount --bind /dev/null "$f"; n=$((n + 1)); fi
  done < <(dpkg -L "$p")
done
echo "dryrun: hid $n installed files of: ${hide[*]}"
test ! -s /usr/include/gif_lib.h && test ! -s /usr/include/x86_64-linux-gnu/libavcodec/avcodec.h
export GPU_WORK=${GPU_WORK:-/tmp/sdinterp-gpu-dry} OUT=${OUT:-/tmp/sdinterp-gpu-dry-out}
export PYTHON=${PYTHON:-$REPO/.venv/bin/python} JOBS=${JOBS:-2}
if [ $# -eq 0 ]; then
  exec "$REPO/bench/gpu_compare.sh" run --build-only
fi
[ "$1" = "--" ] && shift
exec "$REPO/bench/gpu_compare.sh" run -- "$@"
