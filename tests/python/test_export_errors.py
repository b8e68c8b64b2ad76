"""The exporter's refusals and failures leave nothing behind; a CUDA bundle on the CPU says how to re-export."""

import json
import os
import subprocess

import pytest

from conftest import load_exporter, run_exporter_cli


def test_existing_out_dir_and_missing_model_are_refused(tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "keep").write_text("x")
    proc = run_exporter_cli(tmp_path / "nothing", out, check=False)
    assert proc.returncode == 2 and "exists; pass --overwrite" in proc.stderr
    assert (out / "keep").read_text() == "x"
    proc = run_exporter_cli(tmp_path / "missing.safetensors", tmp_path / "b2", check=False)
    assert proc.returncode == 2 and "no such file" in proc.stderr
    (tmp_path / "notdiffusers").mkdir()
    proc = run_exporter_cli(tmp_path / "notdiffusers", tmp_path / "b3", check=False)
    assert proc.returncode == 2 and "model_index.json" in proc.stderr
    # A bundle given as the model (its own folder, or one exported before) is called one.
    (tmp_path / "notdiffusers" / "model.json").write_text("{}")
    proc = run_exporter_cli(tmp_path / "notdiffusers", tmp_path / "b4", check=False)
    assert proc.returncode == 2 and "an sdinterp bundle already (model.json)" in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "notdiffusers"]


def test_verification_failure_writes_nothing(sd1, tmp_path, monkeypatch, capsys):
    exporter = load_exporter()
    monkeypatch.setattr(exporter, "TOLERANCES", {"float32": -1.0, "float16": -1.0, "bfloat16": -1.0})
    out = tmp_path / "bundle"
    assert exporter.main([str(sd1.folder), str(out)]) == 1
    assert "FAILED" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # neither the bundle nor the temporary folder


def _as_cuda_bundle(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        if f.name != "model.json":
            os.symlink(f, dst / f.name)
    m = json.loads((src / "model.json").read_text())
    m["device"], m["dtype"] = "cuda", "float16"
    (dst / "model.json").write_text(json.dumps(m))


def test_cuda_bundle_on_cpu_says_how_to_reexport(sd1, sdinterp, tmp_path):
    bundle = tmp_path / "cuda-bundle"
    _as_cuda_bundle(sd1.bundle, bundle)
    proc = subprocess.run([sdinterp, "generate", "--bundle", str(bundle), "--device", "cpu", "--prompt", "x",
                           "--seed", "1", "--frames", "2", "--png-dir", str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "traced for cuda/float16" in proc.stderr
    assert "export_bundle.py" in proc.stderr and "--device cpu --dtype float32" in proc.stderr


def test_cuda_bundle_on_cpu_machine_auto_device_says_how_to_reexport(sd1, sdinterp, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    bundle = tmp_path / "cuda-bundle"
    _as_cuda_bundle(sd1.bundle, bundle)
    proc = subprocess.run([sdinterp, "generate", "--bundle", str(bundle), "--prompt", "x", "--seed", "1",
                           "--frames", "2", "--png-dir", str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "--device cpu --dtype float32" in proc.stderr, proc.stderr


def test_each_aoti_tuning_is_listed_and_compiles_with_the_attention_kernel_it_names():
    # One table (AOTI_TUNINGS) gives --aoti-tuning's choices, its help, and the attention kernel put
    # first in LibTorch's priority order while the package compiles (the order is restored after).
    import torch
    from torch.nn.attention import SDPBackend

    exporter = load_exporter()
    before = torch._C._get_sdp_priority_order()
    assert before[0] != int(SDPBackend.CUDNN_ATTENTION)  # LibTorch's own order tries cuDNN late
    firsts = {}
    for name, (_, _, attention) in exporter.AOTI_TUNINGS.items():
        with exporter.attention_first(attention):
            inside = torch._C._get_sdp_priority_order()
        assert torch._C._get_sdp_priority_order() == before
        assert sorted(inside) == sorted(before)
        firsts[name] = SDPBackend(inside[0])
        if attention is None:
            assert inside == before, name
    assert firsts["cudnn-attention"] == SDPBackend.CUDNN_ATTENTION
    assert firsts["default"] == firsts["fast-diffusion"] == SDPBackend(before[0])
    proc = run_exporter_cli("--help", env={"COLUMNS": "400"})  # no line breaks inside the names
    help_text = " ".join(proc.stdout.split())
    for name, (what, _, _) in exporter.AOTI_TUNINGS.items():
        assert f"{name} ({what})" in help_text, name
