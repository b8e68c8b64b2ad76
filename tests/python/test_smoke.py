"""scripts/smoke.py, the GPU runners' check that sdinterp computes correct frames, run here on the CPU:
it passes on the bundled tiny-sd and on a fresh export, and fails when the frames are wrong."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import load_module, rewrite_module

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "scripts" / "smoke.py"


def smoke(sdinterp: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SMOKE), "--sdinterp", sdinterp, *map(str, args)],
                          capture_output=True, text=True, timeout=900)


def test_passes_on_the_bundled_model(sdinterp):
    proc = smoke(sdinterp)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 5 and all(line.endswith(": ok") for line in lines[:4]), proc.stdout
    assert lines[-1] == "smoke: pass: the notebook's four examples on cpu"


def test_passes_on_a_fresh_export_for_the_device(sdinterp, tmp_path):
    # The path a GPU runner takes: tiny-sd rebuilt in diffusers and exported for the device.
    proc = smoke(sdinterp, "--export", "--keep", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "tiny-sd exported for cpu in float32" in proc.stdout
    assert (tmp_path / "tiny-sd-export" / "model.json").is_file()


def test_fails_when_the_frames_are_wrong(sdinterp, tmp_path):
    # The VAE decoder's last convolution slightly off: pictures that look right, numbers that are not.
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "models" / "tiny-sd", bundle, symlinks=True)
    decoder = load_module(bundle / "vae_decoder.pt")
    bias = next(p for n, p in decoder.named_parameters() if n.endswith("decoder.conv_out.bias"))
    bias.data += 0.02
    rewrite_module(bundle / "vae_decoder.pt", decoder)
    proc = smoke(sdinterp, "--bundle", bundle)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.count(": WRONG") == 4, proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith("smoke: FAIL")


def test_usage_errors(sdinterp, tmp_path):
    proc = smoke(sdinterp, "--device", "gpu")
    assert proc.returncode == 2 and "expected cpu, cuda or cuda:N" in proc.stdout
    proc = subprocess.run([sys.executable, str(SMOKE), "--sdinterp", str(tmp_path / "none")], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "run scripts/build.sh first" in proc.stdout
