"""A single-file checkpoint (original Stable Diffusion layout) exports offline with --config: a local
diffusers folder holding only configs and the tokenizer; the bundle equals the diffusers-folder one."""

import hashlib
import json

import random_pipelines
from conftest import assert_frame_matches, generate, load_module, run_exporter_cli


def test_single_file_export_matches(sd1, sdinterp, workdir, tmp_path):
    import torch

    ckpt = workdir / "sd1-tiny.safetensors"
    random_pipelines.save_single_file(sd1.pipe, ckpt)
    config = workdir / "sd1-tiny-config"
    random_pipelines.save_config_only(sd1.pipe, config)
    assert not list(config.rglob("*.safetensors"))
    bundle = workdir / "sd1-tiny-single-file-bundle"
    proc = run_exporter_cli(ckpt, bundle, "--config", config, "--offline")
    assert "verification" in proc.stdout

    m = json.loads((bundle / "model.json").read_text())
    assert m["source"]["kind"] == "single-file"
    assert m["source"]["weights_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert m["noise_schedule"] == json.loads((sd1.bundle / "model.json").read_text())["noise_schedule"]

    # The conversion is lossless: the traced UNets of both bundles give the same numbers.
    g = torch.Generator().manual_seed(3)
    x, t, ctx = torch.randn(2, 4, 8, 8, generator=g), torch.tensor([10.0, 700.0]), torch.randn(2, 77, 32, generator=g)
    a = load_module(bundle / "unet.pt")(x, t, ctx)
    b = load_module(sd1.bundle / "unet.pt")(x, t, ctx)
    assert torch.equal(a, b)

    prompt, seed = "a photo of a cat", 1234
    frames = generate(sdinterp, bundle, tmp_path / "walk", "--mode", "prompt-walk", "--prompt", prompt, "--seed", seed,
                      "--frames", 2, "--step-size", 0, "--height", 64, "--width", 64)
    assert_frame_matches(frames[0], sd1.reference(prompt, "", seed, 64, 64), "frame 0")
