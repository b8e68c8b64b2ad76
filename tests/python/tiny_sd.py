"""models/tiny-sd as a diffusers pipeline again, for re-exporting it (another device, dtype, or an
AOTInductor UNet) and checking the re-export against the golden frames.

tiny-sd holds TorchScript modules only, traced from diffusers' UNet2DConditionModel and
AutoencoderKL and transformers' CLIPTextModel (the golden README's description: UNet
block_out_channels 32, 64 with one cross-attention level, cross_attention_dim 32, classic attention;
VAE with 4 levels of 32 channels; CLIP text encoder with hidden size 32 and 2 layers). The configs
below rebuild those modules; their weights are read back from the .pt files, and each rebuilt
module is checked against its .pt file before anything is made of it.

    python3 tests/python/tiny_sd.py OUT_DIR                  # the pipeline in diffusers layout (save_pretrained)
    python3 tests/python/tiny_sd.py --bundle OUT_DIR [--overwrite]
                                    # the bundle made anew as models/tiny-sd was made: the pipeline
                                    # through scripts/export_bundle.py --compat, byte for byte
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from bundle_weights import load_module  # noqa: E402  (a bundle's module, its weights beside it or inside)

TINY_SD = REPO / "models" / "tiny-sd"
DESCRIPTION = ("tiny random-weight model with the Stable Diffusion 1.x architecture (diffusers UNet2DConditionModel, "
               "AutoencoderKL, transformers CLIPTextModel), for tests and smoke runs only: it draws noise, not pictures")
# model.json's export time (SOURCE_DATE_EPOCH): 2026-12-01, when tiny-sd was re-exported.
EXPORT_EPOCH = "1796083200"
LICENCE = "tokenizer/LICENSE-OpenAI-CLIP"
UNET_CONFIG = dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(32, 64),
                   down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                   up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                   cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32)
VAE_CONFIG = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
                  block_out_channels=(32, 32, 32, 32), down_block_types=("DownEncoderBlock2D",) * 4,
                  up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32, sample_size=64)
TEXT_CONFIG = dict(vocab_size=49408, hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                   max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=32,
                   bos_token_id=0, eos_token_id=2, pad_token_id=1)


def _weights(scripted, prefix: str = "m.") -> dict:
    return {name[len(prefix):]: t for name, t in scripted.named_parameters()}


def _check(what: str, err: float) -> None:
    if err > 1e-5:
        raise AssertionError(f"the rebuilt tiny-sd {what} differs from its .pt file by {err}: its config is wrong")


def rebuild_unet():
    """The diffusers UNet behind tiny-sd's unet.pt, checked to give unet.pt's outputs."""
    import torch
    from diffusers import UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor

    scripted = load_module(TINY_SD / "unet.pt")
    unet = UNet2DConditionModel(**UNET_CONFIG).eval()
    unet.set_attn_processor(AttnProcessor())
    unet.load_state_dict(_weights(scripted), strict=True)
    g = torch.Generator().manual_seed(7)
    x, t, ctx = torch.randn(3, 4, 8, 12, generator=g), torch.tensor([999.0, 500.0, 1.0]), torch.randn(3, 77, 32, generator=g)
    with torch.no_grad():
        _check("UNet", float((unet(x, t, encoder_hidden_states=ctx).sample - scripted(x, t, ctx)).abs().max()))
    return unet


def rebuild_vae():
    """The AutoencoderKL behind vae_decoder.pt and vae_encoder.pt (both hold the whole VAE)."""
    import torch
    from diffusers import AutoencoderKL
    from diffusers.models.attention_processor import AttnProcessor

    decoder = load_module(TINY_SD / "vae_decoder.pt")
    encoder = load_module(TINY_SD / "vae_encoder.pt")
    vae = AutoencoderKL(**VAE_CONFIG).eval()
    vae.set_attn_processor(AttnProcessor())
    vae.load_state_dict(_weights(decoder), strict=True)
    g = torch.Generator().manual_seed(7)
    z, img = torch.randn(2, 4, 8, 12, generator=g), torch.rand(2, 3, 64, 96, generator=g) * 2 - 1
    with torch.no_grad():
        _check("VAE decoder", float((vae.decode(z).sample - decoder(z)).abs().max()))
        _check("VAE encoder", float((vae.encode(img).latent_dist.mean - encoder(img)).abs().max()))
    return vae


def rebuild_text_encoder():
    """The CLIPTextModel behind text_encoder.pt."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    scripted = load_module(TINY_SD / "text_encoder.pt")
    # Classic ("eager") attention, as the bundle was traced and the golden frames were made; PyTorch's
    # fused attention, transformers' default now, differs in the last bit of most values.
    model = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG, attn_implementation="eager")).eval()
    missing, unexpected = model.load_state_dict(_weights(scripted), strict=False)
    if unexpected or any(not k.endswith("position_ids") for k in missing):
        raise AssertionError(f"tiny-sd text encoder weights do not fit: missing {missing}, unexpected {unexpected}")
    ids = torch.tensor([[49406, 320, 1125, 539, 320, 2368, 49407] + [49407] * 70,
                        [49406, 49407] + [49407] * 75])
    with torch.no_grad():
        _check("text encoder", float((model(ids).last_hidden_state - scripted(ids)).abs().max()))
    return model


def rebuild_pipeline():
    """tiny-sd as a StableDiffusionPipeline (float32, CPU), every module checked against its .pt file.
    The scheduler is the notebook's LMS with the bundle's noise schedule."""
    from diffusers import LMSDiscreteScheduler, StableDiffusionPipeline
    from transformers import CLIPTokenizer

    schedule = json.loads((TINY_SD / "model.json").read_text())["noise_schedule"]
    tokenizer = CLIPTokenizer(vocab=str(TINY_SD / "tokenizer" / "vocab.json"),
                              merges=str(TINY_SD / "tokenizer" / "merges.txt"),
                              pad_token="<|endoftext|>", model_max_length=77)
    return StableDiffusionPipeline(vae=rebuild_vae(), text_encoder=rebuild_text_encoder(), tokenizer=tokenizer,
                                   unet=rebuild_unet(), scheduler=LMSDiscreteScheduler(**schedule, steps_offset=1),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def make_aoti_bundle(out: Path, exporter) -> dict:
    """Writes tiny-sd + unet.pt2 to `out`; returns the compiled record."""
    out.mkdir(parents=True, exist_ok=True)
    for item in TINY_SD.iterdir():
        if item.name != "model.json":
            os.symlink(item, out / item.name)
    manifest = json.loads((TINY_SD / "model.json").read_text())
    record, report = exporter.compile_unet_aoti(rebuild_unet(), manifest["text_encoder"]["hidden_size"], out, "cpu",
                                                "float32", manifest["tokenizer"]["max_length"])
    if not report["ok"]:
        raise AssertionError(f"unet.pt2 disagrees with the eager UNet: {report['checks']}")
    manifest["unet"]["compiled"] = record
    (out / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return record


def add_compiled_decoder(src: Path, out: Path, exporter) -> dict:
    """Writes the bundle `src` (tiny-sd, with or without unet.pt2) + vae_decoder.pt2 to `out`, as
    export_bundle.py --aoti-vae compiles it; returns the compiled record."""
    out.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.name != "model.json":
            os.symlink(item.resolve(), out / item.name)
    manifest = json.loads((src / "model.json").read_text())
    record, report = exporter.compile_vae_decoder_aoti(rebuild_vae(), out, "cpu", "float32")
    if not report["ok"]:
        raise AssertionError(f"vae_decoder.pt2 disagrees with the eager VAE decoder: {report['checks']}")
    manifest["vae"]["compiled"] = record
    (out / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return record


def export_bundle(out: Path, overwrite: bool = False) -> None:
    """The bundle models/tiny-sd is: the rebuilt pipeline (classic attention, as the golden bundle was
    traced) exported by scripts/export_bundle.py in a fresh interpreter, plus the tokenizer's licence.
    The folder is named tiny-sd-diffusers, which model.json records as the source."""
    licence = (TINY_SD / LICENCE).read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "tiny-sd-diffusers"
        rebuild_pipeline().save_pretrained(folder)
        cmd = [sys.executable, str(REPO / "scripts" / "export_bundle.py"), str(folder), str(out), "--compat",
               "--description", DESCRIPTION, *(["--overwrite"] if overwrite else [])]
        env = {**os.environ, "SOURCE_DATE_EPOCH": EXPORT_EPOCH, "HF_HUB_OFFLINE": "1"}
        subprocess.run(cmd, check=True, env=env)
    (out / LICENCE).write_bytes(licence)


def copy_without_package(src: Path, out: Path) -> None:
    """The same bundle with its unet.pt2 missing (model.json still names it)."""
    shutil.copytree(src, out, symlinks=True)
    (out / "unet.pt2").unlink()


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--bundle"] and len(args) in (2, 3) and args[2:] in ([], ["--overwrite"]):
        export_bundle(Path(args[1]), overwrite=len(args) == 3)
    elif len(args) == 1 and not args[0].startswith("-"):
        rebuild_pipeline().save_pretrained(args[0])
    else:
        sys.exit("usage: tiny_sd.py OUT_DIR | tiny_sd.py --bundle OUT_DIR [--overwrite]")
