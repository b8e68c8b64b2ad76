"""SD 1.x-shaped random pipeline (epsilon, pad id 49407): export, then sdinterp draws what diffusers draws."""

import hashlib
import json

from conftest import assert_frame_matches, generate, load_module


def test_manifest_records_the_model(sd1):
    m = json.loads((sd1.bundle / "model.json").read_text())
    assert m["format_version"] == 3
    assert (m["device"], m["dtype"], m["attention"]) == ("cpu", "float32", "sdpa")
    assert m["tokenizer"] == {"kind": "clip-bpe", "vocab": "tokenizer/vocab.json", "merges": "tokenizer/merges.txt",
                                   "max_length": 77, "bos_id": 49406, "eos_id": 49407, "pad_id": 49407}
    assert m["text_encoder"]["hidden_size"] == 32
    assert m["unet"] == {"file": "unet.pt", "in_channels": 4, "sample_size": 8, "cross_attention_dim": 32,
                         "latent_multiple": 1}
    assert (m["vae"]["scale_factor"], m["vae"]["scaling_factor"], m["vae"]["latent_channels"]) == (8, 0.18215, 4)
    assert m["noise_schedule"] == {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                                   "beta_schedule": "scaled_linear", "prediction_type": "epsilon"}
    src = m["source"]
    # A local folder is recorded by its name: a bundle names no folder of the machine that made it.
    assert (src["model"], src["kind"], src["revision"]) == (sd1.folder.name, "folder", None)
    files = src["weight_files"]
    assert set(files) == {"unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                          "text_encoder/model.safetensors"}
    for name, digest in files.items():
        assert hashlib.sha256((sd1.folder / name).read_bytes()).hexdigest() == digest
    verification = m["export"]["verification"]["modules"]
    assert set(verification) == {"text_encoder", "unet", "vae_decoder", "vae_encoder"}
    assert all(rep["ok"] for rep in verification.values())
    for name in ("text_encoder.pt", "unet.pt", "vae_decoder.pt", "vae_encoder.pt", "tokenizer/vocab.json",
                 "tokenizer/merges.txt"):
        assert (sd1.bundle / name).is_file()
    assert not list(sd1.bundle.parent.glob(".*partial*"))


def test_prompt_walk_frames_equal_diffusers(sd1, sdinterp, tmp_path):
    # prompt-walk with step size 0: every frame is the pipeline's image of one latent.
    prompt, seed = "a photo of a cat", 1234
    frames = generate(sdinterp, sd1.bundle, tmp_path / "walk", "--mode", "prompt-walk", "--prompt", prompt,
                      "--seed", seed, "--frames", 2, "--step-size", 0, "--height", 64, "--width", 64)
    assert len(frames) == 2
    ref = sd1.reference(prompt, "", seed, 64, 64)
    for i, frame in enumerate(frames):
        assert_frame_matches(frame, ref, f"frame {i}")
    meta = json.loads((tmp_path / "walk.json").read_text())
    assert meta["sdinterp"]["bundle"]["manifest"]["source"]["kind"] == "folder"


def test_slerp_endpoints_equal_diffusers(sd1, sdinterp, tmp_path):
    # slerp-latent draws two latents together; its first and last frames are those latents' images.
    prompt, negative, seed = "a watercolor of a lighthouse", "blurry", 42
    frames = generate(sdinterp, sd1.bundle, tmp_path / "slerp", "--mode", "slerp-latent", "--prompt", prompt,
                      "--negative", negative, "--seed", seed, "--frames", 2, "--height", 64, "--width", 96)
    assert len(frames) == 2
    assert_frame_matches(frames[0], sd1.reference(prompt, negative, seed, 64, 96, 0, 2), "first frame")
    assert_frame_matches(frames[-1], sd1.reference(prompt, negative, seed, 64, 96, 1, 2), "last frame")


def test_compat_export_uses_classic_attention(sd1, workdir):
    # --compat: no scaled_dot_product_attention in any graph (LibTorch < 2.0 lacks it), same numbers.
    import torch

    from conftest import export_in_process

    bundle = workdir / "sd1-tiny-compat-bundle"
    export_in_process(sd1.folder, bundle, "--compat")
    m = json.loads((bundle / "model.json").read_text())
    assert m["attention"] == "classic" and m["export"]["compat"] is True
    for name in ("text_encoder.pt", "unet.pt", "vae_decoder.pt", "vae_encoder.pt"):
        ops = {n.kind() for n in torch.jit.load(str(bundle / name)).inlined_graph.nodes()}
        assert "aten::scaled_dot_product_attention" not in ops, name
    assert "aten::scaled_dot_product_attention" in {
        n.kind() for n in torch.jit.load(str(sd1.bundle / "unet.pt")).inlined_graph.nodes()}
    g = torch.Generator().manual_seed(5)
    x, t, ctx = torch.randn(2, 4, 8, 12, generator=g), torch.tensor([3.0, 900.0]), torch.randn(2, 77, 32, generator=g)
    classic = load_module(bundle / "unet.pt")(x, t, ctx)
    sdpa = load_module(sd1.bundle / "unet.pt")(x, t, ctx)
    torch.testing.assert_close(classic, sdpa, rtol=1e-4, atol=1e-5)
