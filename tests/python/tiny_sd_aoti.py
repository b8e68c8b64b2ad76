"""models/tiny-sd with an AOTInductor UNet, for the golden tests of the compiled path.

tiny-sd holds TorchScript modules only. Its UNet is diffusers' UNet2DConditionModel with the
config below (the golden README's description: block_out_channels 32, 64, one cross-attention
level, cross_attention_dim 32, classic attention); its weights are read back from unet.pt, and the
rebuilt module is checked against unet.pt before it is compiled with the exporter's own
compile_unet_aoti. The result is a copy of the bundle (the .pt files linked, not copied) with
unet.pt2 and a model.json that names it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY_SD = REPO / "models" / "tiny-sd"
UNET_CONFIG = dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(32, 64),
                   down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                   up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                   cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32)


def rebuild_unet():
    """The diffusers UNet behind tiny-sd's unet.pt, checked to give unet.pt's outputs."""
    import torch
    from diffusers import UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor

    scripted = torch.jit.load(str(TINY_SD / "unet.pt"))
    unet = UNet2DConditionModel(**UNET_CONFIG).eval()
    unet.set_attn_processor(AttnProcessor())
    state = {name[len("m."):]: t for name, t in scripted.named_parameters()}
    unet.load_state_dict(state, strict=True)
    g = torch.Generator().manual_seed(7)
    x, t, ctx = torch.randn(3, 4, 8, 12, generator=g), torch.tensor([999.0, 500.0, 1.0]), torch.randn(3, 77, 32, generator=g)
    with torch.no_grad():
        err = float((unet(x, t, encoder_hidden_states=ctx).sample - scripted(x, t, ctx)).abs().max())
    if err > 1e-5:
        raise AssertionError(f"the rebuilt tiny-sd UNet differs from unet.pt by {err}: UNET_CONFIG is wrong")
    return unet


def make_bundle(out: Path, exporter) -> dict:
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


def copy_without_package(src: Path, out: Path) -> None:
    """The same bundle with its unet.pt2 missing (model.json still names it)."""
    shutil.copytree(src, out, symlinks=True)
    (out / "unet.pt2").unlink()
