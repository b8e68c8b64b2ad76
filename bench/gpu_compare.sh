#!/usr/bin/env bash
# One-shot GPU comparison of sdinterp against diffusers (issue 7, item 3). See bench/README-gpu.md.
#
#   bench/gpu_compare.sh prepare        here (Debian 12, PyPI and Debian reachable): fills bench/gpu/wheels,
#                                        bench/gpu/debs and bench/gpu/ffmpeg-symbols.txt, which travel with
#                                        the working tree to the GPU machine (ignored: named in the carry list)
#   bench/gpu_compare.sh run [-- ARGS]  on the GPU machine (no network): unpacks the debs into a prefix,
#                                        installs the wheels, builds build/sdinterp against that prefix and
#                                        the torch wheel's LibTorch (in the background), and runs
#                                        bench/gpu_compare.py ARGS (default: the full 30x15 512x512 comparison)
#   bench/gpu_compare.sh run --build-only     only the unpack and the build (a dry run of the carried set)
#
# Environment for `run`: OUT (results folder, default ./bench/results/gpu-compare), GPU_WORK (scratch, default
# /tmp/sdinterp-gpu), PYTHON (default python3), JOBS (build jobs, default nproc), GPU_BUDGET_S (seconds the
# whole run may take, default 560: the Python part skips what no longer fits and always writes its results),
# PROBE (1: run the AOTInductor probe carried in bench/gpu/probe beside the untimed stages; 0, the default
# since the probe found the crash's cause on the H100 run of 2026-12-06: not), PROBE_DEVICE (cuda, or cpu for
# a dry run here). A compiled UNet package an earlier run brought back, copied to bench/gpu/cache/ and
# carried, is reused instead of compiling (gpu_compare.py --aoti-reuse auto).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
GPU_DIR=$REPO/bench/gpu
cd "$REPO"

# Debian packages the C++ build needs beyond a compiler, CMake and the torch wheel (scripts/setup.sh's
# list, build tools and test-only packages left out), plus pkgconf in case the machine has no pkg-config.
# FFmpeg is carried as its -dev packages only (headers, .pc files): its runtime libraries pull in about
# 150 packages (74 MB of .debs), more than the 64 MiB the working tree may carry, so `run` links
# sdinterp against stub libraries with FFmpeg's exported symbols (made from bench/gpu/ffmpeg-symbols.txt).
# Every stub aborts if called: MP4 output does not work in that build; the benchmark writes PNG frames.
DEBS=(libcli11-dev nlohmann-json3-dev libgif-dev libgif7 libstb-dev libstb0 libutf8proc-dev libutf8proc2
  libwebp-dev libwebp7 libwebpmux3 libwebpdemux2 pkgconf pkgconf-bin libpkgconf3
  libavcodec-dev libavformat-dev libswscale-dev libavutil-dev libswresample-dev)
FFMPEG_DEV=(libavcodec-dev libavformat-dev libswscale-dev libavutil-dev libswresample-dev)

prepare() {
  local py=${PYTHON:-$REPO/.venv/bin/python}
  [ -x "$py" ] || py=python3
  local diffusers_version
  diffusers_version=$(sed -n 's/^diffusers==\([^ ]*\).*/\1/p' scripts/requirements.txt)
  [ -n "$diffusers_version" ] || { echo "prepare: no diffusers==VERSION in scripts/requirements.txt" >&2; exit 1; }
  rm -rf "$GPU_DIR/wheels" "$GPU_DIR/debs"
  mkdir -p "$GPU_DIR/wheels" "$GPU_DIR/debs"

  # Python: the GPU image has torch, transformers, accelerate, scipy, Pillow, requests, filelock,
  # huggingface_hub, safetensors, regex and zipp, but not diffusers or importlib_metadata (pure Python).
  echo "prepare: wheels: diffusers==$diffusers_version importlib_metadata"
  "$py" -m pip download -q --no-deps --only-binary=:all: -d "$GPU_DIR/wheels" \
    "diffusers==$diffusers_version" "importlib_metadata"

  echo "prepare: debs: ${DEBS[*]}"
  if ! apt-cache show libcli11-dev >/dev/null 2>&1; then apt-get update -qq; fi
  (cd "$GPU_DIR/debs" && apt-get -o APT::Sandbox::User=root download -q "${DEBS[@]}" >/dev/null)

  # The AOTInductor probe (issue 13, item 1) travels with the tree too: `run` starts it beside the
  # untimed stages.
  local probe=$REPO/../shared/probes/aoti-cuda
  rm -rf "$GPU_DIR/probe"
  if [ -f "$probe/run_probe.sh" ]; then
    cp -r "$probe" "$GPU_DIR/probe"
    echo "prepare: probe copied from ../shared/probes/aoti-cuda"
  else
    echo "prepare: no ../shared/probes/aoti-cuda: the run goes without the probe"
  fi

  # Exported symbols of the FFmpeg runtime libraries the -dev packages point at (their first Depends).
  local tmp
  tmp=$(mktemp -d)
  local runtime=()
  for d in "${FFMPEG_DEV[@]}"; do
    local deb=("$GPU_DIR"/debs/"${d}"_*.deb)
    mapfile -t -O "${#runtime[@]}" runtime < <(dpkg-deb -f "${deb[0]}" Depends | tr ',' '\n' |
      sed 's/^ *//; s/[ (].*//' | grep -E '^lib(avcodec|avformat|avutil|swscale|swresample)[0-9]+$' || true)
  done
  mapfile -t runtime < <(printf '%s\n' "${runtime[@]}" | sort -u)
  echo "prepare: FFmpeg symbols from ${runtime[*]}"
  (cd "$tmp" && apt-get -o APT::Sandbox::User=root download -q "${runtime[@]}" >/dev/null && for f in *.deb; do dpkg -x "$f" root; done)
  {
    echo "# soname kind symbol size: dynamic symbols exported by Debian's FFmpeg runtime libraries"
    echo "# (${runtime[*]}), for the stub libraries bench/gpu_compare.sh run builds. Made by prepare."
    for lib in "$tmp"/root/usr/lib/x86_64-linux-gnu/lib*.so.*; do
      [ -L "$lib" ] && continue
      local soname
      soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
      nm -D --defined-only -S -t d "$lib" | awk -v so="$soname" '
        NF == 4 { kind = $3; size = $2 + 0; name = $4 }
        NF == 3 { kind = $2; size = 0; name = $3 }
        NF < 3 { next }
        { sub(/@.*/, "", name)
          if (kind ~ /[TtWi]/) print so, "func", name, size
          else if (kind ~ /[DdBbRrV]/) print so, "data", name, size }' | sort -u
    done
  } >"$GPU_DIR/ffmpeg-symbols.txt"
  rm -rf "$tmp"

  echo "prepare: carried files (ignored by git: the device call names them in its carry list, with"
  echo "bench/gpu/probe and bench/gpu/cache, where a package an earlier run brought back goes):"
  du -ch "$GPU_DIR"/wheels/* "$GPU_DIR"/debs/* "$GPU_DIR/ffmpeg-symbols.txt" | tail -1
  ls -s "$GPU_DIR"/wheels "$GPU_DIR"/debs
}

# Unpacks the carried .debs into $DEPS/usr and points their pkg-config files there; builds the
# FFmpeg stub libraries; writes a pkg-config wrapper using the carried pkgconf.
unpack_deps() {
  local deps=$1
  ls "$GPU_DIR"/debs/*.deb >/dev/null 2>&1 || { echo "run: no bench/gpu/debs/*.deb: run '$0 prepare' first" >&2; exit 1; }
  rm -rf "$deps"
  mkdir -p "$deps"
  for f in "$GPU_DIR"/debs/*.deb; do dpkg-deb -x "$f" "$deps" 2>/dev/null || dpkg -x "$f" "$deps"; done
  local libdir=$deps/usr/lib/x86_64-linux-gnu
  rm -f "$libdir"/*.a  # static archives: never wanted (FFmpeg's would be linked instead of the stubs)
  for pc in "$libdir"/pkgconfig/*.pc "$deps"/usr/share/pkgconfig/*.pc; do
    [ -f "$pc" ] || continue
    sed -i -e "s#=/usr\\b#=$deps/usr#g" -e "s#-I/usr/#-I$deps/usr/#g" -e "s#-L/usr/#-L$deps/usr/#g" "$pc"
  done
  # FFmpeg stubs: one C file per soname, a function or an object of the right size per symbol.
  local cc=${CC:-cc}
  command -v "$cc" >/dev/null || cc=gcc
  mkdir -p "$deps/stubs"
  awk -v dir="$deps/stubs" '
    /^#/ { next }
    { file = dir "/" $1 ".c"
      if (!(file in seen)) { seen[file] = 1
        print "#include <stdio.h>\n#include <stdlib.h>\n" \
              "static void stub_called(const char* n) { fprintf(stderr, \"sdinterp gpu bench: FFmpeg stub %s \" " \
              "\"called: this build has no real FFmpeg (MP4 output unavailable)\\n\", n); abort(); }" > file }
      if ($2 == "func") print "void " $3 "(void) { stub_called(\"" $3 "\"); }" >> file
      else print "unsigned char " $3 "[" ($4 > 0 ? $4 : 1) "] __attribute__((aligned(16)));" >> file }' \
    "$GPU_DIR/ffmpeg-symbols.txt"
  for c in "$deps"/stubs/*.c; do
    local soname
    soname=$(basename "$c" .c)
    "$cc" -shared -fPIC -O0 -w -Wl,-soname,"$soname" -o "$libdir/$soname" "$c"
    # The -dev package's libNAME.so points at the full version (libavcodec.so.59.37.100): the stub.
    local dev_link=$libdir/${soname%.so.*}.so
    if [ -L "$dev_link" ] && [ ! -e "$dev_link" ]; then ln -sfn "$soname" "$dev_link"; fi
  done
  # Dangling links are what the stubs replace: report any other.
  local dangling
  dangling=$(find "$libdir" -maxdepth 1 -xtype l -printf '%f ')
  [ -z "$dangling" ] || echo "run: warning: dangling library links in the prefix: $dangling" >&2
  mkdir -p "$deps/bin"
  local pkgconf=$deps/usr/bin/pkgconf
  cat >"$deps/bin/pkg-config" <<EOF
#!/bin/sh
PKG_CONFIG_LIBDIR=$libdir/pkgconfig:$deps/usr/share/pkgconfig LD_LIBRARY_PATH=$libdir exec $pkgconf "\$@"
EOF
  chmod +x "$deps/bin/pkg-config"
}

build() {
  local deps=$1 build_dir=$2 py=$3
  local torch_dir
  torch_dir=$("$py" -c 'import os, torch; print(os.path.join(torch.utils.cmake_prefix_path, "Torch"))')
  local gen=() jobs=${JOBS:-$(nproc)}
  command -v ninja >/dev/null && gen=(-G Ninja)
  local libdir=$deps/usr/lib/x86_64-linux-gnu
  echo "build: configure (Torch_DIR=$torch_dir, prefix $deps/usr)"
  local t0=$SECONDS
  rm -f "$build_dir/CMakeCache.txt"  # the prefix was unpacked anew: find every library again
  cmake -S "$REPO" -B "$build_dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DSDINTERP_BUILD_TESTS=OFF -DSDINTERP_BUILD_BENCH=OFF -DSDINTERP_FUZZ=OFF \
    -DTorch_DIR="$torch_dir" -DCMAKE_PREFIX_PATH="$deps/usr" \
    -DPKG_CONFIG_EXECUTABLE="$deps/bin/pkg-config" \
    -DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath-link,$libdir"
  echo "build: configured in $((SECONDS - t0)) s; building sdinterp with $jobs jobs"
  cmake --build "$build_dir" --target sdinterp -j "$jobs"
  echo "build: done in $((SECONDS - t0)) s"
}

install_wheels() {
  local site=$1 py=$2
  rm -rf "$site"
  mkdir -p "$site"
  if ! "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" \
      "$GPU_DIR"/wheels/*.whl; then
    echo "run: pip failed; unpacking the (pure-Python) wheels directly" >&2
    for w in "$GPU_DIR"/wheels/*.whl; do "$py" -m zipfile -e "$w" "$site"; done
  fi
}

run() {
  local build_only=0
  while [ $# -gt 0 ]; do
    case $1 in
      --build-only) build_only=1; shift ;;
      --) shift; break ;;
      *) break ;;
    esac
  done
  local started=$SECONDS
  local deadline=$(( $(date +%s) + ${GPU_BUDGET_S:-560} ))
  local out=${OUT:-$REPO/bench/results/gpu-compare}
  local work=${GPU_WORK:-/tmp/sdinterp-gpu}
  local py=${PYTHON:-python3}
  mkdir -p "$out" "$work"
  out=$(cd "$out" && pwd)
  local deps=$work/deps build_dir=$work/build site=$work/site
  exec > >(tee -a "$out/run.log") 2>&1
  echo "run: $(date -u +%FT%TZ) on $(uname -n); commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown); repo $REPO; out $out; work $work"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  fi
  echo "run: $("$py" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)')"
  echo "run: $(cmake --version | head -1); ninja $(ninja --version 2>/dev/null || echo absent); $(c++ --version | head -1)"

  unpack_deps "$deps"
  install_wheels "$site" "$py"
  echo "run: deps and wheels ready in $((SECONDS - started)) s"

  local status=$work/build.rc
  rm -f "$status"
  if [ $build_only = 1 ]; then
    build "$deps" "$build_dir" "$py"
    echo "run: build only: $build_dir/sdinterp; ldd:"
    LD_LIBRARY_PATH=$deps/usr/lib/x86_64-linux-gnu ldd "$build_dir/sdinterp" | grep -E "not found|$deps" || true
    LD_LIBRARY_PATH=$deps/usr/lib/x86_64-linux-gnu "$build_dir/sdinterp" info
    return
  fi
  # The build runs while the Python side builds the models and exports the bundle (untimed work);
  # gpu_compare.py waits for it before anything it times.
  ( set +e; build "$deps" "$build_dir" "$py" >"$out/build.log" 2>&1; echo $? >"$status" ) &
  local build_pid=$!
  # The probe (bench/gpu/probe, from ../shared/probes/aoti-cuda) runs beside the untimed stages too,
  # with the carried prefix as its extra library path (as sdinterp runs); gpu_compare.py waits for its
  # exit-status file before timing anything.
  local wait_also=() probe_pid=""
  local probe_out=$work/probe-out
  if [ "${PROBE:-0}" = 1 ] && [ -f "$GPU_DIR/probe/run_probe.sh" ]; then
    rm -rf "$probe_out" "$work/probe.rc"
    ( set +e; OUT=$probe_out PYTHON=$py PROBE_WORK=$work/probe PROBE_EXTRA_LD=$deps/usr/lib/x86_64-linux-gnu \
        bash "$GPU_DIR/probe/run_probe.sh" "${PROBE_DEVICE:-cuda}" >/dev/null 2>&1; echo $? >"$work/probe.rc" ) &
    probe_pid=$!
    wait_also=(--wait-also "$work/probe.rc")
    echo "run: the AOTInductor probe runs in the background (${PROBE_DEVICE:-cuda})"
  fi
  local args=("$@")
  [ ${#args[@]} -gt 0 ] || args=(--device cuda)
  PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
    "$py" "$REPO/bench/gpu_compare.py" --sdinterp "$build_dir/sdinterp" \
      --sdinterp-lib-path "$deps/usr/lib/x86_64-linux-gnu" --wait-build "$status" \
      --workdir "$work/py" --out "$out" --deadline "$deadline" "${wait_also[@]}" "${args[@]}" ||
    echo "run: gpu_compare.py exited $?"
  wait "$build_pid" || true  # not a bare `wait`: that would wait for the tee above, forever
  [ -f "$status" ] && echo "run: build exit status $(cat "$status") (log: build.log)"
  if [ -n "$probe_pid" ]; then
    wait "$probe_pid" || true
    echo "run: probe exit status $(cat "$work/probe.rc" 2>/dev/null || echo none); its summary:"
    cat "$probe_out/summary.txt" 2>/dev/null || true
    grep -E "^bindings|std::filesystem from|cuda\* from" "$probe_out/probe.log" 2>/dev/null || true
    # Its files travel in logs.tar.gz as probe-NAME.
    local p
    for p in "$probe_out"/*; do [ -f "$p" ] && cp "$p" "$out/probe-$(basename "$p")"; done
  fi
  # No machine paths in what may be committed: the scratch folder and the checkout by name only
  # (gpu_compare.py has already named its own scratch folder WORK; run.log is still being written).
  local f
  for f in "$out"/*.log "$out"/probe-* "$out"/results.json "$out"/results.md; do
    if [ -f "$f" ] && [ "$(basename "$f")" != run.log ]; then
      sed -i "s#$work#GPU_WORK#g; s#$REPO#REPO#g" "$f"
    fi
  done
  # The device tool brings back at most 8 files: the logs travel as one archive.
  local logs=()
  for f in "$out"/*; do
    case $(basename "$f") in
      run.log) ;;
      *.log | probe-*) logs+=("$(basename "$f")") ;;
    esac
  done
  if [ ${#logs[@]} -gt 0 ] && tar -czf "$out/logs.tar.gz" -C "$out" "${logs[@]}"; then
    (cd "$out" && rm -f "${logs[@]}")
    echo "run: logs in logs.tar.gz: ${logs[*]}"
  fi
  echo "run: finished in $((SECONDS - started)) s"
}

case ${1:-} in
  prepare) shift; prepare "$@" ;;
  run) shift; run "$@" ;;
  *) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
