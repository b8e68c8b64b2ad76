#!/usr/bin/env python3
"""Times the same jobs with two sdinterp builds, side by side: run it before and after a refactor
(which must not change speed). Runs alternate A, B, A, B... so that both see the same machine
state; prints the median job seconds (the result event's `seconds`) and whole-command wall seconds
as a Markdown table.

Usage: bench/compare_builds.py BUILD_A BUILD_B [--rounds N] [--bundle models/tiny-sd]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

# The notebook's walks on the bundled model (its default size), 30 frames, LMS, 15 steps.
JOBS = {
    "slerp-latent": ["--mode", "slerp-latent", "--prompt", "a photo of a cat", "--seed", "1"],
    "circular": ["--mode", "circular", "--prompt", "sea sunset", "--seed", "2024"],
    "multi-prompt": ["--mode", "multi-prompt", "--prompt", "a", "--prompt", "b", "--prompt", "c", "--seed", "5"],
}


def run_once(binary, bundle, job, out_dir):
    output = os.path.join(out_dir, "walk.gif")
    start = time.perf_counter()
    proc = subprocess.run([binary, "generate", "--bundle", bundle, *JOBS[job], "--frames", "30", "-o", output,
                           "--overwrite", "--progress", "json"], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    result = next(json.loads(line) for line in proc.stdout.splitlines() if '"event":"result"' in line)
    return result["seconds"], wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_a")
    parser.add_argument("build_b")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bundle", default="models/tiny-sd")
    args = parser.parse_args()
    builds = {"A": os.path.join(args.build_a, "sdinterp"), "B": os.path.join(args.build_b, "sdinterp")}
    times = {(b, j): [] for b in builds for j in JOBS}
    with tempfile.TemporaryDirectory() as out_dir:
        for b in builds:  # one untimed run each: page cache and module loading warmed alike
            run_once(builds[b], args.bundle, "slerp-latent", out_dir)
        for _ in range(args.rounds):
            for job in JOBS:
                for b in builds:
                    times[(b, job)].append(run_once(builds[b], args.bundle, job, out_dir))
    print(f"A = {args.build_a}, B = {args.build_b}; median of {args.rounds} runs each, alternated\n")
    print("| job | A job s | B job s | B/A | A wall s | B wall s | B/A |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for job in JOBS:
        a_job, a_wall = (statistics.median(t[k] for t in times[("A", job)]) for k in (0, 1))
        b_job, b_wall = (statistics.median(t[k] for t in times[("B", job)]) for k in (0, 1))
        print(f"| {job} | {a_job:.3f} | {b_job:.3f} | {b_job / a_job:.3f} | {a_wall:.3f} | {b_wall:.3f} | "
              f"{b_wall / a_wall:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
