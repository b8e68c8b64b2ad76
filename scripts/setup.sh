#!/usr/bin/env bash
# Installs everything sdinterp needs on a fresh Debian 12 machine; safe to run again.
#   Debian packages: compilers, CMake, CLI11, nlohmann_json, giflib, stb, utf8proc, GoogleTest,
#   Google Benchmark, clang (fuzzers), clang-format (the test command checks formatting), FFmpeg and libwebp, slurm-wlm (the sharding test starts a Slurm
#   on loopback), python3-pil (Debian's Pillow is built with libimagequant: bench/gif_quality.py's
#   anchor). Python: .venv with the PyPI torch wheel (LibTorch).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config python3-venv
  libcli11-dev nlohmann-json3-dev libgif-dev libstb-dev libutf8proc-dev
  googletest libgtest-dev libbenchmark-dev clang libclang-rt-14-dev clang-format
  libwebp-dev libavcodec-dev libavformat-dev libswscale-dev libavutil-dev ffmpeg
  slurm-wlm python3-pil)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -m pip install -q -r scripts/requirements.txt; then
  echo "setup: pip install failed (PyPI must be reachable)" >&2
  exit 1
fi
echo "setup: done"
