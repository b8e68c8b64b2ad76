"""Keyframe timelines (--mode timeline) against a direct PyTorch implementation of their semantics over
tiny-sd rebuilt in diffusers: keyframe i's latent is torch.manual_seed(seed_i); torch.randn(1, 4, h/8,
w/8), its conditionings the text encoder's outputs for its prompt and negative; frame f of the
segment from keyframe i (at a) to i+1 (at b) has t = ease((f - a) / (b - a)) and slerps latents and
conditionings (the notebook's slerp); with cycle, a closing segment runs back to keyframe 0 at index
`frames`. Each frame is then diffusers' StableDiffusionPipeline (LMS, 15 steps, guidance 8) given
those latents and embeddings. Golden tolerance: within 1 of round(255 x), >= 99.9% equal.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tiny_sd
from conftest import GUIDANCE, STEPS, assert_frame_matches
from golden_cases import embed_text, notebook_slerp as slerp

BUNDLE = str(tiny_sd.TINY_SD)
SIZE = 64

EASES = {
    "linear": lambda u: u,
    "sine": lambda u: (1 - math.cos(math.pi * u)) / 2,
    "cubic": lambda u: 3 * u * u - 2 * u ** 3,
    "in": lambda u: 1 - math.cos(math.pi * u / 2),
    "out": lambda u: math.sin(math.pi * u / 2),
    "hold": lambda u: 0.0,
}


@pytest.fixture(scope="module")
def pipe():
    return tiny_sd.rebuild_pipeline()


def resolve(keyframes: list[dict], seed: int, negative: str = "", ease: str = "linear") -> list[dict]:
    out = []
    for k in keyframes:
        out.append({"frame": k["frame"], "prompt": k["prompt"], "negative": k.get("negative", negative),
                    "seed": k.get("seed", out[-1]["seed"] if out else seed), "ease": k.get("ease", ease)})
    return out


def reference_frames(pipe, keyframes: list[dict], seed: int, cycle: bool = False, frames: int = 0,
                     only: set[int] | None = None) -> dict[int, np.ndarray]:
    """Frame index -> diffusers' image [H, W, 3] in [0, 1], for the frames in `only` (all by default)."""
    import torch

    keys = resolve(keyframes, seed)
    for k in keys:
        torch.manual_seed(k["seed"])
        k["latent"] = torch.randn(1, 4, SIZE // 8, SIZE // 8)
        k["positive"], k["negative_embeds"] = embed_text(pipe, k["prompt"]), embed_text(pipe, k["negative"])
    plan = []
    for i, k in enumerate(keys):
        closing = i + 1 == len(keys)
        if closing and not cycle:
            plan.append((k["frame"], k, k, 0.0))
            break
        nxt = keys[0] if closing else keys[i + 1]
        a, b = k["frame"], frames if closing else nxt["frame"]
        for f in range(a, b):
            plan.append((f, k, nxt, EASES[k["ease"]]((f - a) / (b - a))))
    out = {}
    for f, k, nxt, t in plan:
        if only is not None and f not in only:
            continue
        with torch.no_grad():
            image = pipe(prompt_embeds=slerp(t, k["positive"], nxt["positive"]),
                         negative_prompt_embeds=slerp(t, k["negative_embeds"], nxt["negative_embeds"]),
                         latents=slerp(t, k["latent"], nxt["latent"]), num_inference_steps=STEPS,
                         guidance_scale=GUIDANCE, height=SIZE, width=SIZE, output_type="np").images[0]
        out[f] = image
    return out


def run_timeline(sdinterp: str, tmp_path: Path, job: dict, name: str = "frames") -> tuple[list[np.ndarray], dict]:
    job = {"bundle": BUNDLE, "mode": "timeline", "steps": STEPS, "guidance": GUIDANCE, "png-dir": name, **job}
    (tmp_path / f"{name}-job.json").write_text(json.dumps(job))
    proc = subprocess.run([sdinterp, "run", f"{name}-job.json", "--progress", "none", "-q"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((tmp_path / name).glob("frame_*.png"))]
    return frames, json.loads((tmp_path / f"{name}.json").read_text())


EVERY_EASE = [
    {"frame": 0, "prompt": "a red fox in snow", "negative": "blurry", "seed": 1},
    {"frame": 3, "prompt": "a white owl at night", "ease": "sine"},
    {"frame": 6, "prompt": "a white owl at night", "seed": 5, "ease": "cubic"},
    {"frame": 9, "prompt": "a lighthouse at dawn", "ease": "in", "seed": 11},
    {"frame": 12, "prompt": "a field of poppies", "ease": "out"},
    {"frame": 15, "prompt": "a field of poppies", "seed": 2, "ease": "hold"},
    {"frame": 18, "prompt": "a red fox in snow", "negative": "blurry", "seed": 1},
]


def test_every_ease_with_seeds_and_a_hold_matches_the_reference(sdinterp, tmp_path, pipe):
    ours, meta = run_timeline(sdinterp, tmp_path, {"seed": 7, "keyframes": EVERY_EASE, "batch": 4})
    assert len(ours) == 19 and meta["sdinterp"]["frames_written"] == 19
    reference = reference_frames(pipe, EVERY_EASE, seed=7)
    assert sorted(reference) == list(range(19))
    for f in range(19):
        assert_frame_matches(ours[f], reference[f], f"timeline frame {f}")
    # The hold: frames 15, 16, 17 are keyframe 6's, computed once and written three times.
    assert np.array_equal(ours[15], ours[16]) and np.array_equal(ours[15], ours[17])
    # The last keyframe repeats the first: the same frame.
    assert np.array_equal(ours[18], ours[0])
    # A golden comparison that can fail: the frame of another seed does not pass.
    other = reference_frames(pipe, [{**EVERY_EASE[0], "seed": 2}, EVERY_EASE[1]], seed=7, only={0})[0]
    with pytest.raises(AssertionError):
        assert_frame_matches(ours[0], other, "frame 0 against another seed's")


def test_a_cycle_closes_back_to_the_first_keyframe(sdinterp, tmp_path, pipe):
    keyframes = [{"frame": 0, "prompt": "a red fox", "seed": 3}, {"frame": 3, "prompt": "a white owl", "seed": 4,
                                                                 "ease": "sine"},
                 {"frame": 5, "prompt": "a lighthouse"}]
    ours, meta = run_timeline(sdinterp, tmp_path, {"seed": 7, "keyframes": keyframes, "cycle": True, "frames": 9,
                                                   "ease": "linear", "interp": "slerp"})
    assert len(ours) == 9 and meta["cycle"] is True
    reference = reference_frames(pipe, keyframes, seed=7, cycle=True, frames=9)
    for f in range(9):
        assert_frame_matches(ours[f], reference[f], f"cycle frame {f}")


def test_the_job_ease_is_the_keyframes_default(sdinterp, tmp_path, pipe):
    keyframes = [{"frame": 0, "prompt": "a red fox", "seed": 3}, {"frame": 4, "prompt": "a white owl", "seed": 8}]
    ours, _ = run_timeline(sdinterp, tmp_path, {"keyframes": keyframes, "ease": "cubic"})
    reference = reference_frames(pipe, [{**k, "ease": "cubic"} for k in keyframes], seed=0, only={1, 2})
    for f in (1, 2):
        assert_frame_matches(ours[f], reference[f], f"cubic frame {f}")
    # The ease shows: frame 1 (u = 1/4) eased linearly is another picture.
    linear = reference_frames(pipe, keyframes, seed=0, only={1})
    with pytest.raises(AssertionError):
        assert_frame_matches(ours[1], linear[1], "cubic frame 1 against linear")


def test_a_keyframe_is_what_prompt_walk_renders_alone(sdinterp, tmp_path):
    keyframes = [{"frame": 0, "prompt": "a red fox", "seed": 3}, {"frame": 4, "prompt": "a white owl", "seed": 9,
                                                                 "negative": "blurry"}]
    ours, _ = run_timeline(sdinterp, tmp_path, {"keyframes": keyframes, "seed": 1})
    for index, k in ((0, keyframes[0]), (4, keyframes[1])):
        out = tmp_path / f"alone{index}"
        cmd = [sdinterp, "generate", "--bundle", BUNDLE, "--mode", "prompt-walk", "--prompt", k["prompt"],
               "--negative", k.get("negative", ""), "--seed", str(k["seed"]), "--frames", "2", "--steps", str(STEPS),
               "--guidance", str(GUIDANCE), "--png-dir", str(out), "-q", "--progress", "none"]
        assert subprocess.run(cmd, capture_output=True, timeout=300).returncode == 0
        alone = np.asarray(Image.open(out / "frame_0000.png").convert("RGB"))
        assert_frame_matches(ours[index], alone / 255.0, f"keyframe at {index} against prompt-walk")


def test_equal_frames_are_rendered_once_and_metadata_repeats_the_timeline(sdinterp, tmp_path):
    keyframes = [{"frame": 0, "prompt": "a red fox", "seed": 3, "ease": "hold"}, {"frame": 5, "prompt": "a white owl"}]
    ours, meta = run_timeline(sdinterp, tmp_path, {"keyframes": keyframes, "seed": 1, "steps": 3, "batch": 1})
    assert len(ours) == 6
    assert all(np.array_equal(ours[0], f) for f in ours[:5]) and not np.array_equal(ours[0], ours[5])
    calls = meta["sdinterp"]["unet_calls"]
    assert calls["aoti"] + calls["torchscript"] == 2 * 3  # two frames rendered, 3 steps each
    # The metadata is a job: it repeats the timeline frame for frame.
    proc = subprocess.run([sdinterp, "run", "frames.json", "--png-dir", "again", "-q", "--progress", "none"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for a, b in zip(sorted((tmp_path / "frames").glob("*.png")), sorted((tmp_path / "again").glob("*.png"))):
        assert a.read_bytes() == b.read_bytes()


def test_the_compact_flag_form_equals_the_job_file(sdinterp, tmp_path):
    keyframes = [{"frame": 0, "prompt": "a red fox: at dawn", "seed": 3, "negative": "blurry"},
                 {"frame": 3, "prompt": "a white owl", "ease": "sine"}]
    ours, meta = run_timeline(sdinterp, tmp_path, {"keyframes": keyframes, "seed": 1, "steps": 2})
    cmd = [sdinterp, "generate", "--bundle", BUNDLE, "--mode", "timeline", "--seed", "1", "--steps", "2",
           "--guidance", str(GUIDANCE), "--keyframe", "0,seed=3,negative=blurry:a red fox: at dawn",
           "--keyframe", '{"frame": 3, "prompt": "a white owl", "ease": "sine"}', "--png-dir", "flags", "-q",
           "--progress", "none"]
    assert subprocess.run(cmd, cwd=tmp_path, capture_output=True, timeout=300).returncode == 0
    assert json.loads((tmp_path / "flags.json").read_text())["keyframes"] == meta["keyframes"]
    for a, b in zip(sorted((tmp_path / "frames").glob("*.png")), sorted((tmp_path / "flags").glob("*.png"))):
        assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("job, words", [
    ({"keyframes": [{"frame": 0}, {"frame": 2, "prompt": "b"}]}, 'keyframe 1 has no "prompt"'),
    ({"keyframes": [{"frame": 1, "prompt": "a"}, {"frame": 2, "prompt": "b"}]}, "the first keyframe is at frame 0"),
    ({"keyframes": [{"frame": 0, "prompt": "a"}, {"frame": 3, "prompt": "b"}, {"frame": 3, "prompt": "c"}]},
     "keyframe 3 is at frame 3, not after keyframe 2 (frame 3); frames must increase"),
    ({"keyframes": [{"frame": 0, "prompt": "a", "ease": "wobble"}, {"frame": 2, "prompt": "b"}]},
     'job.json: keyframe 1: unknown ease "wobble"; choose one of: linear, sine, cubic, in, out, hold'),
    ({"keyframes": [{"frame": 0, "prompt": "a"}, {"frame": 5, "prompt": "b"}], "cycle": True, "frames": 5},
     "--frames (the period, 5) must exceed the last keyframe's frame (5)"),
    ({"keyframes": [{"frame": 0, "prompt": "a"}, {"frame": 5, "prompt": "b"}], "frames": 3},
     "--frames 3 does nothing in a timeline without --cycle: it ends on its last keyframe (6 frames); "
     "leave --frames out, or add --cycle to make it the loop's period"),
    ({"keyframes": [{"frame": 0, "prompt": "a"}]}, "needs at least 2 keyframes (got 1)"),
    ({"mode": "multi-prompt", "prompt": ["a", "b"], "keyframes": [{"frame": 0, "prompt": "a"}]},
     "keyframes are for --mode timeline (this is --mode multi-prompt)"),
    ({"mode": "circular", "prompt": "a", "cycle": True}, "--cycle is for --mode timeline"),
    ({"mode": "circular", "prompt": "a", "ease": "sine"}, "--ease sine is for --mode timeline (this is --mode circular)"),
    ({"mode": "circular", "prompt": "a", "strength": 0.8}, "--strength 0.8 is for --mode image-morph"),
    ({"mode": "circular", "prompt": "a", "interp": "lerp"},
     "--interp lerp is for --mode slerp-latent, multi-prompt, timeline and image-morph (this is --mode circular)"),
    ({"mode": "prompt-walk", "prompt": "a", "interp": "lerp"}, "--interp lerp is for --mode slerp-latent"),
    ({"keyframes": [{"frame": 0, "prompt": "a", "sed": 4}, {"frame": 2, "prompt": "b"}]},
     'keyframe 1: unknown key "sed" (did you mean "seed"?)'),
    ({"keyframes": [{"frame": 0, "prompt": "a"}, {"frame": 2, "prompt": "b"}], "prompt": "x"},
     "takes its prompts from the keyframes"),
])
def test_a_bad_timeline_is_one_line_and_nothing_written(sdinterp, tmp_path, job, words):
    job = {"bundle": BUNDLE, "mode": "timeline", "output": "t.gif", **job}
    (tmp_path / "job.json").write_text(json.dumps(job))
    proc = subprocess.run([sdinterp, "run", "job.json"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.json"]
