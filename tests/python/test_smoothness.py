"""The smoothness report (run metadata's "sdinterp"."smoothness" and `sdinterp report`) against an
independent computation from the PNG frames written, with the README's definitions:
d_j = sqrt(mean((F_{j+1} - F_j)^2)) over all pixels and channels (0..255 units), a cycle adding last
to first; mean, max, istd (population standard deviation), cv = istd / mean, max_over_mean,
smoothness = 1 - Gini(d), Gini(d) = sum_i sum_k |d_i - d_k| / (2 n^2 mean(d)).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tiny_sd
from golden_cases import CASES, case_args, sampling_args

BUNDLE = str(tiny_sd.TINY_SD)


def independent_report(folder: Path, cycle: bool = False) -> dict:
    frames = [np.asarray(Image.open(p).convert("RGB")).astype(np.float64) for p in sorted(folder.glob("frame_*.png"))]
    pairs = list(zip(frames, frames[1:])) + ([(frames[-1], frames[0])] if cycle else [])
    d = np.array([np.sqrt(np.mean((b - a) ** 2)) for a, b in pairs])
    mean = d.mean()
    gini = np.abs(d[:, None] - d[None, :]).sum() / (2 * len(d) ** 2 * mean)
    return {"distances": d.tolist(), "mean": mean, "max": d.max(), "istd": d.std(), "cv": d.std() / mean,
            "max_over_mean": d.max() / mean, "smoothness": 1 - gini}


def assert_same_report(ours: dict, expected: dict) -> None:
    assert len(ours["distances"]) == len(expected["distances"])
    np.testing.assert_allclose(ours["distances"], expected["distances"], rtol=1e-6)
    for key in ("mean", "max", "istd", "cv", "max_over_mean", "smoothness"):
        assert ours[key] == pytest.approx(expected[key], rel=1e-6), key


def generate(sdinterp: str, cwd: Path, *args) -> dict:
    proc = subprocess.run([sdinterp, "generate", "--bundle", BUNDLE, "--steps", "2", "--png-dir", "f", "-q",
                           "--progress", "none", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads((cwd / "f.json").read_text())["sdinterp"]["smoothness"]


def report(sdinterp: str, cwd: Path, *args) -> subprocess.CompletedProcess:
    frames = sorted(str(p) for p in (cwd / "f").glob("frame_*.png"))
    return subprocess.run([sdinterp, "report", *frames, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("walk", [
    ["--mode", "slerp-latent", "--prompt", "a fox", "--seed", "4", "--frames", "8"],
    ["--mode", "multi-prompt", "--prompt", "a fox", "--prompt", "a cat", "--prompt", "a dog", "--frames", "4"],
    ["--mode", "circular", "--prompt", "a fox", "--seed", "2", "--frames", "9", "--seamless-loop"],
    ["--mode", "timeline", "--keyframe", "0,seed=1:a fox", "--keyframe", "3,seed=2:a cat", "--cycle", "--frames", "7"],
])
def test_the_metadata_report_equals_an_independent_one_and_sdinterp_report(sdinterp, tmp_path, walk):
    ours = generate(sdinterp, tmp_path, *walk)
    cycle = "--cycle" in walk or "--seamless-loop" in walk
    assert ours["cycle"] is cycle
    assert_same_report(ours, independent_report(tmp_path / "f", cycle))
    proc = report(sdinterp, tmp_path, "--json", *(["--cycle"] if cycle else []))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == ours
    proc = report(sdinterp, tmp_path, *(["--cycle"] if cycle else []))
    assert f"cv {ours['cv']:.4f}" in proc.stdout and f"smoothness {ours['smoothness']:.4f}" in proc.stdout


def test_frames_that_do_not_move_have_no_ratios(sdinterp, tmp_path):
    ours = generate(sdinterp, tmp_path, "--mode", "prompt-walk", "--step-size", "0", "--prompt", "a fox", "--frames", 3)
    assert ours["distances"] == [0.0, 0.0] and ours["mean"] == 0
    assert ours["cv"] is None and ours["max_over_mean"] is None and ours["smoothness"] is None


def test_the_report_refuses_what_it_cannot_measure(sdinterp, tmp_path):
    generate(sdinterp, tmp_path, "--prompt", "a fox", "--frames", 3)
    first = str(tmp_path / "f" / "frame_0000.png")
    proc = subprocess.run([sdinterp, "report", first], capture_output=True, text=True)
    assert proc.returncode == 2 and "at least 2 frames (got 1, " in proc.stderr
    # The walk's animation or metadata given in place of frames is named as what it is.
    Image.open(first).save(tmp_path / "walk.gif")
    for name, kind in (("walk.gif", "a GIF animation"), ("f.json", "JSON text")):
        proc = subprocess.run([sdinterp, "report", str(tmp_path / name)], capture_output=True, text=True)
        assert proc.returncode == 4 and f"{name}: it is {kind}, not a frame; give PNG frames" in proc.stderr, proc.stderr
    proc = subprocess.run([sdinterp, "report", first, first], capture_output=True, text=True)  # the fewest it takes
    assert proc.returncode == 0 and proc.stdout.startswith("2 frames, 1 step: mean 0.000,"), proc.stdout
    proc = subprocess.run([sdinterp, "report", first, str(tmp_path / "missing.png")], capture_output=True, text=True)
    assert proc.returncode == 4 and "missing.png" in proc.stderr
    Image.new("RGB", (8, 8)).save(tmp_path / "small.png")
    proc = subprocess.run([sdinterp, "report", first, str(tmp_path / "small.png")], capture_output=True, text=True)
    assert proc.returncode == 2 and "all frames must have the same size" in proc.stderr
    # A comparison that can fail: another walk's report is not this one's.
    other = independent_report(tmp_path / "f")
    other["distances"] = [x + 1 for x in other["distances"]]
    with pytest.raises(AssertionError):
        assert_same_report(json.loads((tmp_path / "f.json").read_text())["sdinterp"]["smoothness"], other)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_the_report_of_each_golden_case(sdinterp, tmp_path, case):
    """The notebook's four examples (the golden cases' walks): the metadata's report equals the
    independent one from the PNG frames written, and `sdinterp report` on them."""
    cmd = [sdinterp, "generate", "--bundle", BUNDLE, *case_args(case), *sampling_args(case), "--png-dir", "f", "-q",
           "--progress", "none"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    ours = json.loads((tmp_path / "f.json").read_text())["sdinterp"]["smoothness"]
    assert len(ours["distances"]) == case["frames_shape"][0] - 1
    assert_same_report(ours, independent_report(tmp_path / "f"))
    proc = report(sdinterp, tmp_path, "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout) == ours

