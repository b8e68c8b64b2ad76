"""--pace even on tiny-sd, through the binary: consecutive frames equally far apart (the smoothness
report's cv falls by at least 40% against --pace uniform for slerp-latent, circular and a timeline of
4 seeded keyframes), the ends and keyframes where uniform has them, one measuring pass by default
(the extra UNet calls equal the walk's), and frames at the re-placed weights equal to diffusers'
renders at those weights (tiny-sd rebuilt in diffusers, the notebook's slerp)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tiny_sd
from conftest import GUIDANCE, STEPS, assert_frame_matches
from golden_cases import notebook_slerp as slerp
from pace_bound import lowest_cv_with_keyframes_fixed

BUNDLE = str(tiny_sd.TINY_SD)

WALKS = {
    "slerp-latent": ["--mode", "slerp-latent", "--prompt", "an alien landscape", "--seed", "1234"],
    "circular": ["--mode", "circular", "--prompt", "sea sunset", "--seed", "2024"],
    "timeline": ["--mode", "timeline", "--keyframe", "0,seed=1:a red fox", "--keyframe", "8,seed=2:a white owl",
                 "--keyframe", "16,seed=3:a lighthouse", "--keyframe", "24,seed=4:a field of poppies"],
}


def segment_cv(frames: list[np.ndarray]) -> float:
    d = np.array([np.sqrt(np.mean((b.astype(float) - a) ** 2)) for a, b in zip(frames, frames[1:])])
    return float(d.std() / d.mean())


def render(sdinterp: str, cwd: Path, name: str, *args) -> tuple[list[np.ndarray], dict]:
    cmd = [sdinterp, "generate", "--bundle", BUNDLE, "--steps", str(STEPS), "--guidance", str(GUIDANCE),
           "--png-dir", name, "-q", "--progress", "none", *map(str, args)]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((cwd / name).glob("frame_*.png"))]
    return frames, json.loads((cwd / f"{name}.json").read_text())


@pytest.mark.parametrize("walk", sorted(WALKS))
def test_even_pace_evens_the_walk_and_keeps_its_ends(sdinterp, tmp_path, walk):
    uniform, u_meta = render(sdinterp, tmp_path, "uniform", *WALKS[walk])
    even, e_meta = render(sdinterp, tmp_path, "even", *WALKS[walk], "--pace", "even")
    assert len(even) == len(uniform) and len(uniform) >= 25
    cv_uniform = u_meta["sdinterp"]["smoothness"]["cv"]
    cv_even = e_meta["sdinterp"]["smoothness"]["cv"]
    print(f"{walk}: cv {cv_uniform:.4f} uniform, {cv_even:.4f} even")  # pytest -s
    if walk != "timeline":
        assert cv_even <= 0.6 * cv_uniform, (cv_uniform, cv_even)
    else:
        # Keyframes stay on their frames, so a timeline is paced per segment: each segment's own
        # cv falls by 40% and more, and the walk's as a whole (its segments still move at their own
        # speeds) falls too.
        assert cv_even < cv_uniform
        bound = lowest_cv_with_keyframes_fixed(e_meta["sdinterp"]["smoothness"]["distances"], [0, 8, 16, 24])
        assert cv_even <= 1.03 * bound, (cv_even, bound)
        for first in (0, 8, 16):
            within = [segment_cv(frames[first:first + 9]) for frames in (uniform, even)]
            print(f"  segment from {first}: cv {within[0]:.4f} uniform, {within[1]:.4f} even")
            assert within[1] <= 0.6 * within[0], (first, within)
    fixed = [0, len(uniform) - 1] + ([8, 16] if walk == "timeline" else [])
    for f in fixed:
        assert_frame_matches(even[f], uniform[f] / 255.0, f"{walk} frame {f}, even against uniform")
    weights = e_meta["sdinterp"]["pace"]["weights"]
    assert all(weights[f] is None for f in fixed)
    assert sum(w is not None for w in weights) == len(uniform) - len(fixed)
    # One measuring pass: as many extra UNet calls as the walk takes.
    calls = u_meta["sdinterp"]["unet_calls"]
    assert e_meta["sdinterp"]["pace"]["extra_unet_calls"] == calls["aoti"] + calls["torchscript"]
    assert e_meta["pace"] == "even" and u_meta["pace"] == "uniform"
    assert u_meta["sdinterp"]["pace"]["weights"] == [] and u_meta["sdinterp"]["pace"]["extra_unet_calls"] == 0


def test_more_passes_cost_more_and_multi_prompt_is_paced_per_pair(sdinterp, tmp_path):
    args = ["--mode", "multi-prompt", "--prompt", "a dog", "--prompt", "a cat", "--prompt", "a fox", "--frames", 6,
            "--seed", 7]
    uniform, u_meta = render(sdinterp, tmp_path, "uniform", *args)
    even, e_meta = render(sdinterp, tmp_path, "even", *args, "--pace", "even", "--pace-passes", 2)
    calls = u_meta["sdinterp"]["unet_calls"]
    assert e_meta["sdinterp"]["pace"]["extra_unet_calls"] == 2 * (calls["aoti"] + calls["torchscript"])
    assert e_meta["sdinterp"]["pace"]["measuring_passes"] == 2
    # Each pair's ends stay: the notebook's repeated frame at the inner prompt (frames 5 and 6).
    for f in (0, 5, 6, 11):
        assert_frame_matches(even[f], uniform[f] / 255.0, f"multi-prompt frame {f}")
    weights = e_meta["sdinterp"]["pace"]["weights"]
    assert [w is None for w in weights] == [f in (0, 5, 6, 11) for f in range(12)]
    # A bad value is one line.
    proc = subprocess.run([sdinterp, "generate", "--bundle", BUNDLE, "--prompt", "a", "--pace", "fast", "-o", "x.gif"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and 'unknown --pace "fast"; choose one of: uniform, even' in proc.stderr
    proc = subprocess.run([sdinterp, "generate", "--bundle", BUNDLE, "--prompt", "a", "--pace-passes", "0", "-o",
                           "x.gif"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--pace-passes takes a whole number from 1 to 10" in proc.stderr
    # Measuring passes without --pace even would be ignored: refused, as other options a run does not read.
    proc = subprocess.run([sdinterp, "generate", "--bundle", BUNDLE, "--prompt", "a", "--pace-passes", "3", "-o",
                           "x.gif"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == "sdinterp: error: --pace-passes 3 is for --pace even (this is --pace uniform)\n"
    assert not list(tmp_path.glob("x.gif*"))


def test_paced_frames_are_the_walk_at_their_weights(sdinterp, tmp_path):
    """slerp-latent at the weights the metadata records equals diffusers given those latents."""
    import torch

    even, meta = render(sdinterp, tmp_path, "even", "--mode", "slerp-latent", "--prompt", "an alien landscape",
                        "--negative", "blurry", "--seed", 1234, "--frames", 9, "--pace", "even")
    weights = meta["sdinterp"]["pace"]["weights"]
    uniform_t = [i / 8 for i in range(9)]
    assert any(w is not None and abs(w - t) > 0.01 for w, t in zip(weights, uniform_t)), weights
    pipe = tiny_sd.rebuild_pipeline()
    torch.manual_seed(1234)
    x = torch.randn(2, 4, 8, 8)
    for f in (2, 5, 7):
        with torch.no_grad():
            image = pipe(prompt="an alien landscape", negative_prompt="blurry", latents=slerp(weights[f], x[0:1], x[1:2]),
                         num_inference_steps=STEPS, guidance_scale=GUIDANCE, height=64, width=64,
                         output_type="np").images[0]
        assert_frame_matches(even[f], image, f"paced frame {f} at t = {weights[f]:.4f}")
    # A comparison that can fail: the frame at its uniform weight is another picture.
    with torch.no_grad():
        image = pipe(prompt="an alien landscape", negative_prompt="blurry", latents=slerp(uniform_t[2], x[0:1], x[1:2]),
                     num_inference_steps=STEPS, guidance_scale=GUIDANCE, height=64, width=64,
                     output_type="np").images[0]
    if abs(weights[2] - uniform_t[2]) > 0.02:
        with pytest.raises(AssertionError):
            assert_frame_matches(even[2], image, "paced frame 2 at its uniform weight")


def test_an_uneven_timeline_is_paced_as_far_as_its_keyframes_allow(sdinterp, tmp_path):
    # Keyframes at 0, 6, 15, 24: segments of 6, 9 and 9 frames covering different picture distances.
    # No pacing that keeps the keyframes on their frames can bring the walk's cv below the bound
    # above; even pacing reaches it (and that bound is above 60% of uniform's cv here, which is why
    # a 40% fall is out of reach for such timelines).
    walk = ["--mode", "timeline", "--keyframe", "0,seed=11:a castle", "--keyframe", "6,seed=12:a river",
            "--keyframe", "15,seed=13:a city", "--keyframe", "24,seed=14:a forest"]
    _, u_meta = render(sdinterp, tmp_path, "uniform", *walk)
    _, e_meta = render(sdinterp, tmp_path, "even", *walk, "--pace", "even")
    cv_uniform = u_meta["sdinterp"]["smoothness"]["cv"]
    even = e_meta["sdinterp"]["smoothness"]
    bound = lowest_cv_with_keyframes_fixed(even["distances"], [0, 6, 15, 24])
    print(f"uneven timeline: cv {cv_uniform:.4f} uniform, {even['cv']:.4f} even, lowest possible {bound:.4f}")
    assert even["cv"] <= 1.03 * bound, (even["cv"], bound)
    assert bound > 0.6 * cv_uniform, (bound, cv_uniform)
    # The bound is a real floor: uniform's own distances, each segment evened, give about the same.
    assert abs(lowest_cv_with_keyframes_fixed(u_meta["sdinterp"]["smoothness"]["distances"], [0, 6, 15, 24])
               - bound) <= 0.05 * bound
