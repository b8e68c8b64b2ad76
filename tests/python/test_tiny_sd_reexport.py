"""tiny-sd rebuilt as a diffusers pipeline (tiny_sd.py) and exported again reproduces the golden frames.

This is the path bench/gpu_compare.py takes on a GPU to check the CUDA float32 frames (tiny-sd is
traced for the CPU and a trace bakes its device in): here it runs on the CPU, where it must give
what the committed bundle gives.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import tiny_sd
from conftest import assert_frame_matches, export_in_process, generate
from golden_cases import CASES, case_args, golden_frames


@pytest.fixture(scope="session")
def reexported(workdir) -> Path:
    folder, bundle = workdir / "tiny-sd-rebuilt", workdir / "tiny-sd-reexported"
    tiny_sd.rebuild_pipeline().save_pretrained(folder)
    export_in_process(folder, bundle)
    return bundle


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_reexported_tiny_sd_gives_the_golden_frames(case, reexported, sdinterp, tmp_path):
    golden = golden_frames(case)
    frames = generate(sdinterp, reexported, tmp_path / "frames", *case_args(case))
    assert len(frames) == golden.shape[0]
    for i, frame in enumerate(frames):
        assert_frame_matches(frame, golden[i], f"{case['name']} frame {i} (re-exported tiny-sd)")


def test_rebuild_refuses_a_wrong_config(monkeypatch):
    # The rebuilt modules are checked against the .pt files: a config that does not give the same
    # model is caught before anything is exported from it.
    monkeypatch.setitem(tiny_sd.TEXT_CONFIG, "hidden_act", "gelu")
    with pytest.raises(AssertionError, match="text encoder differs"):
        tiny_sd.rebuild_text_encoder()
