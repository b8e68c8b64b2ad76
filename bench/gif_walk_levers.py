#!/usr/bin/env python3
"""Issue 19, the tiny-sd walk: what the remaining size levers buy, in bytes per dB of PSNR.

Needs bench/gif_quality.py run first with the same --work (it renders the walk and writes the
anchors' GIFs under WORK/out). Two measurements:

  gifsicle -O3 --lossy=N   gifsicle's lossy LZW (the usual way to shrink a GIF after the fact),
                           applied to libimagequant's, ffmpeg's and our `--dither none` GIFs
                           (Debian's gifsicle; skipped when it is not installed)
  the global palette       256-colour k-means (40 Lloyd iterations, mapped without dither), one
                           palette per frame, except a run of k frames that share the global
                           colour table: the PSNR that costs and the 768-byte local colour
                           tables it saves (the global table itself costs 768)

Run from the repository root: .venv/bin/python bench/gif_walk_levers.py [--work DIR]
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gif_quality import decode, metrics  # noqa: E402

SEQ = "tiny-sd-walk"


def kmeans(x, centroids, iterations=40):
    c = centroids.clone()
    for _ in range(iterations):
        d = torch.cdist(x, c)
        a = d.argmin(1)
        sums = torch.zeros_like(c).index_add_(0, a, x)
        n = torch.bincount(a, minlength=len(c)).float()
        used = n > 0
        c[used] = sums[used] / n[used, None]
        if (~used).any():
            worst = d.min(1).values.topk(int((~used).sum())).indices
            c[~used] = x[worst]
    return c


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/sdinterp-gif-bench", help="gif_quality.py's scratch folder")
    args = parser.parse_args()
    frames = sorted(glob.glob(os.path.join(args.work, "seq", SEQ, "*.png")))
    if len(frames) != 30:
        sys.exit(f"{args.work}: no rendered {SEQ}: run bench/gif_quality.py --work {args.work} first")
    src = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in frames])
    height, width = src.shape[1:3]

    print("| GIF | PSNR dB | blurred PSNR dB | temporal PSNR dB | bytes |")
    print("|---|---:|---:|---:|---:|")
    gifsicle = shutil.which("gifsicle")
    for key in ("liq", "ffmpeg", "ours-none"):
        gif = os.path.join(args.work, "out", f"{SEQ}.{key}.gif")
        if not os.path.exists(gif):
            continue
        runs = [("", gif)]
        if gifsicle:
            for lossy in (0, 20, 40, 80):
                out = os.path.join(args.work, "out", f"{SEQ}.{key}.gifsicle{lossy}.gif")
                flags = ["-O3"] + ([f"--lossy={lossy}"] if lossy else [])
                subprocess.run([gifsicle, "--no-warnings", *flags, gif, "-o", out], check=True)
                runs.append((" ".join(["gifsicle"] + flags), out))
        for label, path in runs:
            p, b, t = metrics(decode(path, len(frames), height, width), src)
            print(f"| {key} {label} | {p:.2f} | {b:.2f} | {t:.2f} | {os.path.getsize(path)} |", flush=True)
    if not gifsicle:
        print("(gifsicle not installed: its rows are left out)")

    print()
    # A GIF frame takes either its own local colour table or the file's one global table, so
    # the only palette a frame can share is the global one: here it is fitted to a run of k
    # consecutive frames in the middle of the walk, which then carry no local table, while
    # every other frame keeps its own (k = 30: one palette for the whole walk).
    print("| frames on the global palette | PSNR dB (k-means, no dither) | colour table bytes saved |")
    print("|---:|---:|---:|")
    pixels = torch.tensor(src.astype(np.float32))

    def fit(x, start):
        palette = kmeans(x, start).round().clamp(0, 255)
        return palette, ((x - palette[torch.cdist(x, palette).argmin(1)]) ** 2).sum().item()

    torch.manual_seed(0)
    own = []
    previous = None
    for i in range(len(frames)):
        x = pixels[i].reshape(-1, 3)
        start = previous if previous is not None else x[torch.randperm(len(x))[:256]]
        previous, sse = fit(x, start)
        own.append(sse)
    for shared in (1, 2, 3, 5, 10, 30):
        first = (len(frames) - shared) // 2
        x = pixels[first:first + shared].reshape(-1, 3)
        torch.manual_seed(0)
        _, sse = fit(x, x[torch.randperm(len(x))[:256]])
        total = sse + sum(own[:first]) + sum(own[first + shared:])
        mse = total / pixels.numel()
        saved = (shared - 1) * 768
        print(f"| {shared} | {10 * np.log10(255.0 ** 2 / mse):.2f} | {saved} |", flush=True)

if __name__ == "__main__":
    main()
