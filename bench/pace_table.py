"""--pace uniform against --pace even, side by side in one run: the smoothness report (istd, cv,
max_over_mean, smoothness) and the seconds of each walk, as the README's table shows them, and a strip
of frames (uniform above, even below) as a picture.

    .venv/bin/python bench/pace_table.py [--bundle models/tiny-sd] [--strip docs/pace-strip.png]
        [--walks slerp-latent,circular] [--flags "--height 64 --width 64"]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "python"))

from pace_bound import lowest_cv_with_keyframes_fixed  # noqa: E402

WALKS = {
    "prompt-walk": ["--mode", "prompt-walk", "--prompt", "Epic shot of Sweden", "--seed", "42", "--step-size", "0.01"],
    "slerp-latent": ["--mode", "slerp-latent", "--prompt", "an alien landscape", "--seed", "1234"],
    "multi-prompt (3 prompts x 10)": ["--mode", "multi-prompt", "--prompt", "a dog", "--prompt", "a cat", "--prompt",
                                      "a fox", "--frames", "10", "--seed", "7"],
    "circular": ["--mode", "circular", "--prompt", "sea sunset", "--seed", "2024"],
    "timeline, keyframes at 0 8 16 24": ["--mode", "timeline", "--keyframe", "0,seed=1:a red fox", "--keyframe",
                                         "8,seed=2:a white owl", "--keyframe", "16,seed=3:a lighthouse", "--keyframe",
                                         "24,seed=4:a field of poppies"],
    "timeline, keyframes at 0 6 15 24": ["--mode", "timeline", "--keyframe", "0,seed=11:a castle", "--keyframe",
                                         "6,seed=12:a river", "--keyframe", "15,seed=13:a city", "--keyframe",
                                         "24,seed=14:a forest"],
}


def run(binary: str, bundle: str, out: Path, walk: list[str], pace: str, flags: list[str] = ()) -> dict:
    subprocess.run([binary, "generate", "--bundle", bundle, *walk, *flags, "--pace", pace, "--png-dir", str(out), "-q",
                    "--progress", "none"], check=True, capture_output=True)
    return json.loads(out.with_suffix(".json").read_text())["sdinterp"]


def keyframe_bound(walk: list[str], distances: list[float]) -> float:
    """tests/python/pace_bound.py's bound for a timeline walk given as generate arguments."""
    keys = [int(walk[i + 1].split(",")[0].split(":")[0]) for i, a in enumerate(walk) if a == "--keyframe"]
    return lowest_cv_with_keyframes_fixed(distances, keys)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=str(REPO / "build" / "sdinterp"))
    parser.add_argument("--bundle", default="models/tiny-sd")
    parser.add_argument("--strip", default="")
    parser.add_argument("--walks", default="", help="comma-separated walk names (the table's first column, up to "
                                                    "the first space or comma); default all")
    parser.add_argument("--flags", default="", help="more generate flags for every walk, e.g. a smaller size")
    args = parser.parse_args()
    import shlex

    flags = shlex.split(args.flags)
    wanted = set(filter(None, args.walks.split(",")))
    print("| walk | pace | istd | cv | max/mean | smoothness | seconds |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    bounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, (name, walk) in enumerate(WALKS.items()):
            if wanted and name.split(" ")[0].rstrip(",") not in wanted:
                continue
            for pace in ("uniform", "even"):
                meta = run(args.binary, args.bundle, Path(tmp) / f"{index}-{pace}", walk, pace, flags)
                s = meta["smoothness"]
                if pace == "uniform":
                    uniform_cv = s["cv"]
                if pace == "even" and "--keyframe" in walk:
                    bound = keyframe_bound(walk, s["distances"])
                    bounds.append(f"{name}: {bound:.4f} ({100 * (bound / uniform_cv - 1):+.0f}% against uniform)")
                print(f"| {name} | {pace} | {s['istd']:.3f} | {s['cv']:.4f} | {s['max_over_mean']:.3f} | "
                      f"{s['smoothness']:.4f} | {meta['timings_s']['total']:.2f} |")
        if bounds:
            print("\nLowest cv any pacing can reach with the keyframes on their frames (each segment at its mean "
                  "distance):")
            for line in bounds:
                print(f"- {line}")
        if args.strip:
            from PIL import Image

            rows = []
            for pace in ("uniform", "even"):
                out = Path(tmp) / f"strip-{pace}"
                run(args.binary, args.bundle, out, WALKS["slerp-latent"] + ["--frames", "12"], pace)
                rows.append([Image.open(p).convert("RGB") for p in sorted(out.glob("frame_*.png"))])
            w, h = rows[0][0].size
            strip = Image.new("RGB", (w * len(rows[0]), h * 2 + 4), "white")
            for r, frames in enumerate(rows):
                for i, frame in enumerate(frames):
                    strip.paste(frame, (i * w, r * (h + 4)))
            strip.save(args.strip, optimize=True)


if __name__ == "__main__":
    main()
