"""Random-weight Stable Diffusion pipelines built from configs (no download), for the export tests.

    .venv/bin/python tests/python/random_pipelines.py KIND OUT_DIR [--single-file FILE]

KIND is sd1-tiny, sd1-deep, sd2-tiny (CI-sized) or sd15 (the real Stable Diffusion 1.5 configs, about 860M UNet
parameters, for the export's memory and time measurement). OUT_DIR receives the pipeline in
diffusers layout (save_pretrained); --single-file also writes its weights as one .safetensors file
in the original Stable Diffusion (LDM) layout.

The tokenizer is the SD 1.x CLIP vocabulary of models/tiny-sd/tokenizer; the SD 2.x-shaped pipeline
pads with "!" (id 0) as SD 2.x does.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
TOKENIZER_DIR = REPO / "models" / "tiny-sd" / "tokenizer"

# The notebook's scheduler settings; each model's own scheduler carries its prediction type.
SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")

# The VAE and CLIP text encoder of the SD 1.x-shaped miniatures.
SD1_TINY_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
                    block_out_channels=(32, 32, 32, 32), down_block_types=("DownEncoderBlock2D",) * 4,
                    up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32, sample_size=64)
SD1_TINY_TEXT = dict(vocab_size=49408, hidden_size=32, intermediate_size=37, num_attention_heads=4,
                     num_hidden_layers=2, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=32,
                     bos_token_id=0, eos_token_id=2, pad_token_id=1)

CONFIGS = {
    # SD 1.x architecture in miniature: cross-attention in all but the last level, epsilon.
    "sd1-tiny": dict(
        unet=dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(32, 64),
                  down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                  cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32),
        vae=SD1_TINY_VAE, text=SD1_TINY_TEXT,
        pad_token="<|endoftext|>", prediction_type="epsilon", scheduler="pndm"),
    # SD 1.x's four levels (down factor 8, as SD 1.5: images in steps of 64 px without the
    # upsampling to the skip connections' sizes) at tiny widths. 4 channels per norm group: with 1,
    # the 2x1 bottleneck of a 9-latent side normalises 2 values, which amplifies rounding (batch-
    # size-dependent kernels) past any tolerance; SD 1.5 has 10 to 40.
    "sd1-deep": dict(
        unet=dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 32, 32, 32),
                  down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                  up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                  cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8),
        vae=SD1_TINY_VAE, text=SD1_TINY_TEXT,
        pad_token="<|endoftext|>", prediction_type="epsilon", scheduler="pndm"),
    # SD 2.x architecture in miniature: per-level head counts, linear projections, upcast attention,
    # a GELU text encoder (OpenCLIP converted), pad id 0, v_prediction, a larger native size.
    "sd2-tiny": dict(
        unet=dict(sample_size=12, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(32, 64),
                  down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                  cross_attention_dim=48, attention_head_dim=(2, 4), use_linear_projection=True,
                  upcast_attention=True, norm_num_groups=32),
        vae=dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
                 block_out_channels=(32, 32, 32, 32), down_block_types=("DownEncoderBlock2D",) * 4,
                 up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32, sample_size=96),
        text=dict(vocab_size=49408, hidden_size=48, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
                  max_position_embeddings=77, hidden_act="gelu", projection_dim=32,
                  bos_token_id=0, eos_token_id=2, pad_token_id=1),
        pad_token="!", prediction_type="v_prediction", scheduler="ddim"),
    # The real Stable Diffusion 1.5 configs (stable-diffusion-v1-5/stable-diffusion-v1-5), random weights.
    "sd15": dict(
        unet=dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                  block_out_channels=(320, 640, 1280, 1280),
                  down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                    "DownBlock2D"),
                  up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                  cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32, act_fn="silu",
                  center_input_sample=False, downsample_padding=1, flip_sin_to_cos=True, freq_shift=0,
                  mid_block_scale_factor=1, norm_eps=1e-5),
        vae=dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
                 block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                 up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32, sample_size=512, act_fn="silu"),
        text=dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                  num_hidden_layers=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768,
                  layer_norm_eps=1e-5, bos_token_id=0, eos_token_id=2, pad_token_id=1),
        pad_token="<|endoftext|>", prediction_type="epsilon", scheduler="pndm"),
}


def make_tokenizer(pad_token: str):
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer(vocab=str(TOKENIZER_DIR / "vocab.json"), merges=str(TOKENIZER_DIR / "merges.txt"),
                        pad_token=pad_token, model_max_length=77)
    return tok


def make_scheduler(kind: str, prediction_type: str):
    from diffusers import DDIMScheduler, PNDMScheduler

    if kind == "pndm":  # SD 1.x's scheduler config
        return PNDMScheduler(**SCHEDULE, set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1,
                             prediction_type=prediction_type)
    return DDIMScheduler(**SCHEDULE, clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                         prediction_type=prediction_type)


@torch.no_grad()
def rescale_outputs(unet, vae, hidden: int, device: str = "cpu") -> None:
    """Random weights give noise predictions and images of arbitrary scale; rescale the last convs so
    the noise prediction has unit scale and decoded images are mostly unsaturated (as tiny-sd).
    Probed at a latent side of at most 32, which keeps it quick for SD-1.5-sized models."""
    g = torch.Generator().manual_seed(7)
    s = min(unet.config.sample_size, 32)
    x = torch.randn(2, unet.config.in_channels, s, s, generator=g).to(device)
    ctx = torch.randn(2, 77, hidden, generator=g).to(device)
    out = unet(x, torch.tensor([500.0, 500.0], device=device), encoder_hidden_states=ctx).sample
    k = 1.0 / float(out.std())
    unet.conv_out.weight.mul_(k)
    unet.conv_out.bias.mul_(k)
    z = torch.randn(1, vae.config.latent_channels, 8, 8, generator=g).to(device)
    img = vae.decode(z).sample
    k = 0.5 / float(img.std())
    vae.decoder.conv_out.weight.mul_(k)
    vae.decoder.conv_out.bias.mul_(k)


def build(kind: str, seed: int = 0):
    """A StableDiffusionPipeline with random weights, float32 on the CPU, no safety checker."""
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = CONFIGS[kind]
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**cfg["unet"]).eval()
    vae = AutoencoderKL(**cfg["vae"]).eval()
    text_encoder = CLIPTextModel(CLIPTextConfig(**cfg["text"])).eval()
    if kind != "sd15":
        rescale_outputs(unet, vae, cfg["text"]["hidden_size"])
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=make_tokenizer(cfg["pad_token"]),
                                   unet=unet, scheduler=make_scheduler(cfg["scheduler"], cfg["prediction_type"]),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


# --------------------------------------------------------------------------------------------------
# diffusers layout -> original Stable Diffusion (LDM) single-file layout, SD 1.x (CLIP text encoder).

_RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
           ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection")]
_UNET_TOP = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}


def _unet_key(key: str, layers: int, up_has_attention: list[bool]) -> str:
    def resnet(rest: str) -> str:
        for new, old in _RESNET:
            if rest.startswith(new + "."):
                return old + rest[len(new):]
        raise KeyError(key)

    for new, old in _UNET_TOP.items():
        if key.startswith(new + "."):
            return old + key[len(new):]
    if m := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        i, j, rest = int(m[1]), int(m[2]), m[3]
        return f"input_blocks.{1 + i * (layers + 1) + j}.0.{resnet(rest)}"
    if m := re.match(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.*)", key):
        i, j, rest = int(m[1]), int(m[2]), m[3]
        return f"input_blocks.{1 + i * (layers + 1) + j}.1.{rest}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
        return f"input_blocks.{(int(m[1]) + 1) * (layers + 1)}.0.op.{m[2]}"
    if m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", key):
        return f"middle_block.{2 * int(m[1])}.{resnet(m[2])}"
    if m := re.match(r"mid_block\.attentions\.0\.(.*)", key):
        return f"middle_block.1.{m[1]}"
    if m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        i, j, rest = int(m[1]), int(m[2]), m[3]
        return f"output_blocks.{i * (layers + 1) + j}.0.{resnet(rest)}"
    if m := re.match(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.*)", key):
        i, j, rest = int(m[1]), int(m[2]), m[3]
        return f"output_blocks.{i * (layers + 1) + j}.1.{rest}"
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
        i = int(m[1])
        return f"output_blocks.{i * (layers + 1) + layers}.{2 if up_has_attention[i] else 1}.conv.{m[2]}"
    raise KeyError(key)


_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _vae_key(key: str, num_up: int) -> str:
    key = key.replace("conv_norm_out", "norm_out")
    if m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)\.(weight|bias)$", key):
        return f"{m[1]}.mid.attn_1.{_VAE_ATTN[m[2]]}.{m[3]}"
    if m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)", key):
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        return f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
        return f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        return f"decoder.up.{num_up - 1 - int(m[1])}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
        return f"decoder.up.{num_up - 1 - int(m[1])}.upsample.conv.{m[2]}"
    return key  # conv_in, conv_out, norm_out, quant_conv, post_quant_conv keep their names


def to_original_checkpoint(pipe) -> dict[str, torch.Tensor]:
    """The pipeline's weights as an SD 1.x single-file checkpoint (model.diffusion_model.*,
    first_stage_model.*, cond_stage_model.transformer.text_model.*)."""
    sd: dict[str, torch.Tensor] = {}
    ucfg = pipe.unet.config
    up_attn = ["CrossAttn" in t for t in ucfg.up_block_types]
    for k, v in pipe.unet.state_dict().items():
        sd["model.diffusion_model." + _unet_key(k, ucfg.layers_per_block, up_attn)] = v
    num_up = len(pipe.vae.config.up_block_types)
    for k, v in pipe.vae.state_dict().items():
        nk = _vae_key(k, num_up)
        if ".mid.attn_1." in nk and v.ndim == 2:
            v = v[:, :, None, None]  # the original attention projections are 1x1 convolutions
        sd["first_stage_model." + nk] = v
    for k, v in pipe.text_encoder.state_dict().items():
        if k.endswith("position_ids"):
            continue
        k = k if k.startswith("text_model.") else "text_model." + k
        sd["cond_stage_model.transformer." + k] = v
    return {k: v.contiguous().clone() for k, v in sd.items()}


def save_single_file(pipe, path: Path) -> None:
    from safetensors.torch import save_file

    save_file(to_original_checkpoint(pipe), str(path))


def save_config_only(pipe, folder: Path) -> None:
    """A diffusers folder with the configs and tokenizer but no weights: what from_single_file's
    config= needs to build the pipeline offline."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        pipe.save_pretrained(tmp)
        for f in Path(tmp).rglob("*"):
            if f.is_file() and not f.name.endswith((".safetensors", ".bin")):
                dest = folder / f.relative_to(tmp)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, dest)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=sorted(CONFIGS))
    p.add_argument("out_dir")
    p.add_argument("--single-file", default=None, help="also write an original-layout .safetensors checkpoint")
    a = p.parse_args(argv)
    pipe = build(a.kind)
    print(f"{a.kind}: UNet {sum(p.numel() for p in pipe.unet.parameters()) / 1e6:.1f} M parameters, "
          f"VAE {sum(p.numel() for p in pipe.vae.parameters()) / 1e6:.1f} M, "
          f"text encoder {sum(p.numel() for p in pipe.text_encoder.parameters()) / 1e6:.1f} M")
    pipe.save_pretrained(a.out_dir)
    if a.single_file:
        save_single_file(pipe, Path(a.single_file))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
