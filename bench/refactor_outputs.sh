#!/usr/bin/env bash
# Renders the four golden cases (PNG frames) and one walk as GIF, WebP and MP4, then prints one
# sha256 per output file: run it before and after a refactor and diff the two lists (outputs of the
# same job must be byte-identical). Usage: bench/refactor_outputs.sh BUILD_DIR OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$1/sdinterp"
out="$2"
rm -rf "$out"
mkdir -p "$out"
B=(--bundle models/tiny-sd --progress none)
.venv/bin/python - "$bin" "$out" <<'PY'
import subprocess, sys
sys.path.insert(0, "tests/python")
from golden_cases import CASES, case_args, sampling_args
binary, out = sys.argv[1], sys.argv[2]
for i, case in enumerate(CASES):
    subprocess.run([binary, "generate", "--bundle", "models/tiny-sd", "--progress", "none",
                    *case_args(case), *sampling_args(case), "--png-dir", f"{out}/case{i}"], check=True,
                   stdout=subprocess.DEVNULL)
PY
for ext in gif webp mp4; do
  "$bin" generate "${B[@]}" --mode circular --prompt "sea sunset" --seed 2024 --frames 12 -o "$out/walk.$ext" >/dev/null
done
"$bin" generate "${B[@]}" --mode multi-prompt --prompt a --prompt b --prompt c --frames 5 --seed 5 --dither ordered \
  --pace even -o "$out/paced.gif" >/dev/null
(cd "$out" && find . -type f ! -name '*.json' | sort | xargs sha256sum)
