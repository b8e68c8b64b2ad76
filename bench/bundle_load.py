#!/usr/bin/env python3
"""Bundle load, side by side: the same exported modules with their weights beside them (format
version 3, mapped by sdinterp) and inside the TorchScript archives (version 2, read by LibTorch).

    .venv/bin/python bench/bundle_load.py BUNDLE [--runs 3] [--steps 8] [--size 64] [--out results.md]
    .venv/bin/python bench/bundle_load.py BUNDLE --baseline OTHER_SDINTERP [...]

BUNDLE is a format version 3 bundle (scripts/export_bundle.py's output); the version 2 copy is made
beside it once (BUNDLE-inline, scripts/bundle_weights.inline_weights) and reused. Both are read once
before timing (warm page cache); then the layouts alternate, `--runs` times each, each run one
`sdinterp generate` of 2 frames at SIZE x SIZE. Reported from each run's metadata: the bundle load
(`bundle_load_s.total`), sampling and generation (`timings_s`); and the whole command's wall time
and peak RSS. The frames of the two layouts must be equal value for value.

With --baseline, the two rows are instead two builds of sdinterp on the same format 3 bundle: this
one (--sdinterp) and OTHER_SDINTERP, alternating the same way; their frames must be equal too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from bundle_weights import inline_weights  # noqa: E402


def run_once(sdinterp: str, bundle: Path, out: Path, steps: int, size: int) -> dict:
    cmd = [sdinterp, "generate", "--bundle", str(bundle), "--prompt", "a cat", "--seed", "1", "--frames", "2",
           "--steps", str(steps), "--width", str(size), "--height", str(size), "-q", "--progress", "none",
           "--png-dir", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stderr = proc.stderr.read()
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({status}): {stderr}")
    meta = json.loads(out.with_name(out.name + ".json").read_text())["sdinterp"]
    return {"wall": wall, "rss_gib": usage.ru_maxrss / 2**20, "load": meta["bundle_load_s"]["total"],
            "sampling": meta["timings_s"]["sampling"], "generation": meta["timings_s"]["total"],
            "frames": [p.read_bytes() for p in sorted(out.glob("frame_*.png"))]}


def span(values: list[float], digits: int = 2) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.{digits}f}" if round(lo, digits) == round(hi, digits) else f"{lo:.{digits}f}-{hi:.{digits}f}"


def short(binary: str) -> str:
    """A binary's folder and name, for the table (no machine path)."""
    path = Path(binary)
    return f"{path.parent.name}/{path.name}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--sdinterp", default=str(REPO / "build" / "sdinterp"))
    ap.add_argument("--baseline", help="another sdinterp binary: compare the two builds on BUNDLE instead of layouts")
    ap.add_argument("--out", type=Path, help="also write the table to this file")
    args = ap.parse_args()
    bundle = args.bundle.resolve()
    if json.loads((bundle / "model.json").read_text()).get("format_version", 1) < 3:
        raise SystemExit(f"{bundle}: not a format version 3 bundle (weights beside the modules)")
    if args.baseline:
        rows = {f"baseline build (`{short(args.baseline)}`)": (args.baseline, bundle),
                f"this build (`{short(args.sdinterp)}`)": (args.sdinterp, bundle)}
        return compare(rows, bundle, args, "build")
    inline = bundle.with_name(bundle.name + "-inline")
    if not (inline / "model.json").is_file():
        tmp = Path(tempfile.mkdtemp(prefix=f".{inline.name}.", dir=inline.parent))
        shutil.copytree(bundle, tmp / "b")
        inline_weights(tmp / "b")
        os.rename(tmp / "b", inline)
        shutil.rmtree(tmp)
    rows = {"weights inside the .pt files (format 2, LibTorch reads them)": (args.sdinterp, inline),
            "weights beside, mapped (format 3)": (args.sdinterp, bundle)}
    return compare(rows, bundle, args, "layout")


def compare(rows: dict[str, tuple[str, Path]], bundle: Path, args: argparse.Namespace, what: str) -> int:
    """Runs each row's (binary, bundle) alternately, `args.runs` times each; prints the table."""
    for folder in {folder for _, folder in rows.values()}:  # warm the page cache
        for f in folder.iterdir():
            if f.is_file():
                with open(f, "rb") as fh:
                    while fh.read(1 << 24):
                        pass
    results = {name: [] for name in rows}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for name, (binary, folder) in rows.items():
                out = Path(tmp) / f"{i}-{len(results[name])}-{list(rows).index(name)}"
                results[name].append(run_once(binary, folder, out, args.steps, args.size))
                print(f"{name}: {results[name][-1]['wall']:.2f} s", file=sys.stderr)
    first = [rs[0]["frames"] for rs in results.values()]
    equal = all(f == first[0] for f in first)
    lines = [f"`sdinterp generate`, 2 frames x {args.steps} steps at {args.size}x{args.size}, {args.runs} runs each "
             f"(alternating), warm page cache; bundle `{bundle.name}`",
             "", f"| {what} | bundle load s | sampling s | generation s | whole command s | peak RSS GiB |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, rs in results.items():
        lines.append(f"| {name} | {span([r['load'] for r in rs])} | {span([r['sampling'] for r in rs])} | "
                     f"{span([r['generation'] for r in rs])} | {span([r['wall'] for r in rs])} | "
                     f"{span([r['rss_gib'] for r in rs])} |")
    lines += ["", f"frames equal between the {what}s: {'yes' if equal else 'NO'}"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
