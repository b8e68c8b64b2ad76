"""tiny-sd rebuilt as a diffusers pipeline (tiny_sd.py) and exported again: the same bundle, byte for
byte, and the golden frames.

This is also the path bench/gpu_compare.py takes on a GPU to check the CUDA float32 frames (tiny-sd
is traced for the CPU and a trace bakes its device in), and there it runs diffusers itself on the
four golden walks (golden_cases.diffusers_case_frames), checked here against the golden frames.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import tiny_sd
from conftest import assert_frame_matches, generate
import numpy as np

from golden_cases import CASES, case_args, diffusers_case_frames, golden_frames, to_8bit


@pytest.fixture(scope="session")
def reexported(workdir) -> Path:
    # As a user re-makes it (models/README.md): the recipe in a fresh interpreter, so that nothing
    # traced earlier in this test session changes the TorchScript archives.
    bundle = workdir / "reexport" / "tiny-sd"
    subprocess.run([sys.executable, str(Path(tiny_sd.__file__)), "--bundle", str(bundle)], check=True,
                   capture_output=True, timeout=600)
    return bundle


def without_timings(manifest: dict) -> tuple[dict, list[float]]:
    """The manifest less what a re-export on another machine measures differently, and the
    verification checks' output scales (max |output| of each module on the check inputs): those go
    through the CPU's float32 kernels, which do not round alike on every CPU."""
    export = manifest["export"]
    scales = []
    for report in export["verification"]["modules"].values():
        report.pop("trace_seconds")
        for check in report["checks"]:
            scales.append(check.pop("scale"))
    export.pop("command")  # as typed: the output folder's name and --overwrite differ
    return manifest, scales


def test_reexport_gives_the_same_bytes(reexported):
    committed = sorted(p.relative_to(tiny_sd.TINY_SD) for p in tiny_sd.TINY_SD.rglob("*") if p.is_file())
    made = sorted(p.relative_to(reexported) for p in reexported.rglob("*") if p.is_file())
    assert made == committed
    for name in committed:
        if name.name == "model.json":
            continue
        assert (reexported / name).read_bytes() == (tiny_sd.TINY_SD / name).read_bytes(), f"{name} differs"
    # model.json differs only in the export's timings, the command as typed, and the last float32
    # digits of the verification's output scales (on an AMD EPYC with AVX2: 1.1e-6 relative at most).
    (ours, our_scales), (theirs, their_scales) = (
        without_timings(json.loads((d / "model.json").read_text())) for d in (reexported, tiny_sd.TINY_SD))
    assert ours == theirs
    assert our_scales == pytest.approx(their_scales, rel=1e-5)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_reexported_tiny_sd_gives_the_golden_frames(case, reexported, sdinterp, tmp_path):
    golden = golden_frames(case)
    frames = generate(sdinterp, reexported, tmp_path / "frames", *case_args(case))
    assert len(frames) == golden.shape[0]
    for i, frame in enumerate(frames):
        assert_frame_matches(frame, golden[i], f"{case['name']} frame {i} (re-exported tiny-sd)")


@pytest.fixture(scope="module")
def rebuilt_pipeline():
    pipe = tiny_sd.rebuild_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_diffusers_walks_give_the_golden_frames(case, rebuilt_pipeline):
    # The reference that gpu_compare.py runs on the GPU: on the CPU it is the golden frames again
    # (4.7e-6 at most here; the golden frames came from another diffusers version and machine).
    frames = diffusers_case_frames(rebuilt_pipeline, case)
    golden = golden_frames(case)
    assert frames.shape == golden.shape
    assert float(np.abs(frames - golden).max()) < 1e-4


# The golden cases, and the multi-prompt walk with one negative prompt for all its prompts.
BIT_FOR_BIT = CASES + [dict(next(c for c in CASES if c["mode"] == "multi-prompt"), name="multi_prompt_one_negative",
                            negative_prompts=["blurry"])]


@pytest.mark.parametrize("case", BIT_FOR_BIT, ids=[c["name"] for c in BIT_FOR_BIT])
def test_sdinterp_gives_diffusers_frames_bit_for_bit(case, rebuilt_pipeline, sdinterp, tmp_path):
    # sdinterp computes the walk as diffusers and the notebook do, operation for operation (the
    # schedulers' float32 tables and steps, one text encoder call for the prompts and one for the
    # negative prompts, the notebook's float32 angles and its lerp of a shared negative prompt):
    # rendered with the same frames a model call and decoded in the same chunks (its metadata says
    # which), every 8-bit value is diffusers' own, at one frame a call, at three and at its default.
    # Across batch sizes the CPU's kernels round differently (10-20 values of a case flip by 1).
    for name, extra in (("batch1", ["--batch", "1"]), ("batch3", ["--batch", "3"]), ("default", [])):
        out = tmp_path / name
        frames = np.stack(generate(sdinterp, tiny_sd.TINY_SD, out, *case_args(case), "--device", "cpu", *extra))
        meta = json.loads(Path(f"{out}.json").read_text())
        reference = to_8bit(diffusers_case_frames(rebuilt_pipeline, case, batch=meta["batch"],
                                                  decode_chunk=meta["sdinterp"]["decode_chunk"]))
        differ = int((frames.astype(np.int16) != reference).sum())
        assert differ == 0, (f"{case['name']}, {meta['batch']} frames a call, decoded "
                             f"{meta['sdinterp']['decode_chunk']} at a time: {differ} 8-bit values differ from "
                             "diffusers'")


def test_diffusers_walks_tell_a_wrong_walk(rebuilt_pipeline):
    # The same check fails for a walk that differs from the case: ten times the step size.
    case = next(c for c in CASES if c["mode"] == "prompt-walk")
    frames = diffusers_case_frames(rebuilt_pipeline, dict(case, step_size=10 * case["step_size"]))
    golden = golden_frames(case)
    assert float(np.abs(frames[0] - golden[0]).max()) < 1e-4  # frame 0 has no step yet
    assert float(np.abs(frames[-1] - golden[-1]).max()) > 1e-3


def test_rebuild_refuses_a_wrong_config(monkeypatch):
    # The rebuilt modules are checked against the .pt files: a config that does not give the same
    # model is caught before anything is exported from it.
    monkeypatch.setitem(tiny_sd.TEXT_CONFIG, "hidden_act", "gelu")
    with pytest.raises(AssertionError, match="text encoder differs"):
        tiny_sd.rebuild_text_encoder()
