#!/usr/bin/env python3
"""Checks that sdinterp computes correct frames on this machine's device (CPU or a GPU runner).

The notebook's four examples render on tiny-sd and every frame is compared with diffusers' golden
frames (tests/golden). No model is downloaded: on the CPU the bundled models/tiny-sd runs as it is;
for CUDA, tiny-sd is rebuilt as a diffusers pipeline from the bundle's own weights
(tests/python/tiny_sd.py) and exported for the device in float32 first (about a minute).

What passes:
  cpu   the golden tolerance: every 8-bit value within 1 of round(255 x), at least 99.9% equal
  cuda  every 8-bit value within 1 of the golden frames. The golden frames were made on the CPU, and
        float32 kernels on a GPU round differently (in the one GPU run so far, 88-92% of values were
        equal and none was off by more than 1), so the equal share is printed, not required. A wrong
        frame is off by far more than 1.

Exit status: 0 every frame passes; 1 a frame is wrong or a render failed; 2 bad usage or the set-up
failed (no sdinterp binary, the export failed).

Usage, after scripts/build.sh:
  .venv/bin/python scripts/smoke.py --device cuda
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "python"))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from golden_cases import CASES, case_args, frame_agreement, golden_frames, sampling_args  # noqa: E402


def export_for(device: str, out: Path) -> None:
    """tiny-sd rebuilt in diffusers and exported for `device` in float32, as a user's export is made
    (scaled_dot_product_attention)."""
    import tiny_sd

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "tiny-sd-diffusers"
        tiny_sd.rebuild_pipeline().save_pretrained(folder)
        kind = "cuda" if device.startswith("cuda") else "cpu"
        cmd = [sys.executable, str(REPO / "scripts" / "export_bundle.py"), str(folder), str(out), "--device", kind,
               "--dtype", "float32", "--offline", "--overwrite"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"the export for {kind} failed (exit {proc.returncode}): "
                               + (proc.stderr.strip().splitlines() or [""])[-1])


def check_case(sdinterp: str, bundle: Path, device: str, case: dict, out: Path, strict: bool) -> bool:
    cmd = [sdinterp, "generate", "--bundle", str(bundle), "--device", device, "--png-dir", str(out), "--overwrite",
           "--progress", "none", "-q", *case_args(case), *sampling_args(case)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"smoke: {case['name']}: sdinterp exited {proc.returncode}: "
              + (proc.stderr.strip().splitlines() or [""])[-1])
        return False
    golden = golden_frames(case)
    frames = sorted(out.glob("frame_*.png"))
    if len(frames) != len(golden):
        print(f"smoke: {case['name']}: {len(frames)} frames written, {len(golden)} expected")
        return False
    results = [frame_agreement(np.asarray(Image.open(f).convert("RGB")), golden[i]) for i, f in enumerate(frames)]
    max_diff = max(r.get("max_diff", 255) for r in results)
    equal = min(r.get("equal", 0.0) for r in results)
    problems = [r["problem"] for r in results if "problem" in r]
    ok = not problems and (all(r["ok"] for r in results) if strict else max_diff <= 1)
    needed = "at least 99.9% equal" if strict else "the equal share is not required off the CPU"
    print(f"smoke: {case['name']}: {len(frames)} frames, largest difference {max_diff}/255, lowest equal share "
          f"{100 * equal:.2f}% (within 1 everywhere, {needed}): {'ok' if ok else 'WRONG'}"
          + (f"; {problems[0]}" if problems else ""))
    return ok


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--sdinterp", default=str(REPO / "build" / "sdinterp"), help="the binary (default build/sdinterp)")
    p.add_argument("--bundle", help="a tiny-sd bundle for the device, exported before (default: models/tiny-sd on "
                                    "the CPU, exported here for CUDA)")
    p.add_argument("--export", action="store_true", help="export tiny-sd for the device even on the CPU")
    p.add_argument("--keep", help="write the bundle and frames under this folder and keep them")
    a = p.parse_args(argv)
    if not (a.device == "cpu" or a.device == "cuda" or (a.device.startswith("cuda:") and a.device[5:].isdigit())):
        print(f"smoke: --device {a.device}: expected cpu, cuda or cuda:N")
        return 2
    if not Path(a.sdinterp).is_file():
        print(f"smoke: {a.sdinterp} is missing: run scripts/build.sh first")
        return 2
    on_cpu = a.device == "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.keep) if a.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if a.bundle:
            bundle = Path(a.bundle)
        elif on_cpu and not a.export:
            bundle = REPO / "models" / "tiny-sd"
        else:
            bundle = work / "tiny-sd-export"
            t0 = time.perf_counter()
            try:
                export_for(a.device, bundle)
            except Exception as e:  # one line, exit 2
                print(f"smoke: {e}")
                return 2
            print(f"smoke: tiny-sd exported for {a.device} in float32 ({time.perf_counter() - t0:.0f} s)")
        ok = True
        for case in CASES:
            ok = check_case(a.sdinterp, bundle, a.device, case, work / f"frames-{case['name']}", on_cpu) and ok
    print(f"smoke: {'pass' if ok else 'FAIL'}: the notebook's four examples on {a.device}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
