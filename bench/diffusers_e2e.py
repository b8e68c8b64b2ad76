#!/usr/bin/env python3
"""Row (e) of bench/gpu_compare.py: the same job as sdinterp's whole command, done by a Python script
with diffusers, timed from process start to written frames.

    python3 bench/diffusers_e2e.py --model DIR --png-dir OUT [--device cuda] [--dtype float16] ...

DIR is a StableDiffusionPipeline saved with save_pretrained (gpu_compare.py saves the random-weight
model there before exporting sdinterp's bundle from it). The script imports torch and diffusers,
loads the pipeline in --dtype onto --device, draws the notebook's slerp-latent walk as sdinterp
draws it (gpu_compare.walk_latents), renders all frames in one pipeline call and writes them as
OUT/frame_0000.png, ... (as `sdinterp generate --png-dir`). Its last stdout line is a JSON object
with the seconds each phase took since the interpreter started; the caller times the whole process.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a pipeline folder saved with save_pretrained")
    p.add_argument("--png-dir", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    p.add_argument("--prompt", required=True)
    p.add_argument("--negative", default="")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--frames", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--guidance", type=float, required=True)
    p.add_argument("--size", type=int, required=True)
    a = p.parse_args(argv)
    phases = {}

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from gpu_compare import walk_latents

    phases["imports_s"] = time.perf_counter() - STARTED
    pipe = StableDiffusionPipeline.from_pretrained(a.model, torch_dtype=getattr(torch, a.dtype),
                                                   safety_checker=None, requires_safety_checker=False)
    pipe = pipe.to(a.device)
    pipe.set_progress_bar_config(disable=True)
    phases["load_s"] = time.perf_counter() - STARTED
    latents = walk_latents(a.seed, a.frames, (a.size // 8, a.size // 8))
    with torch.inference_mode():
        images = pipe(prompt=a.prompt, negative_prompt=a.negative, height=a.size, width=a.size,
                      num_inference_steps=a.steps, guidance_scale=a.guidance, num_images_per_prompt=a.frames,
                      latents=latents.to(a.device, getattr(torch, a.dtype))).images
    phases["generated_s"] = time.perf_counter() - STARTED
    out = Path(a.png_dir)
    out.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        image.save(out / f"frame_{i:04d}.png")
    phases["written_s"] = time.perf_counter() - STARTED
    print(json.dumps({k: round(v, 3) for k, v in phases.items()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
