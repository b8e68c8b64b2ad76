#!/usr/bin/env python3
"""Compiles a diffusers model's VAE decoder with AOTInductor, as scripts/export_bundle.py compiles the
UNet (torch.export with a dynamic batch and latent size, the package without its weights), for
bench/gpu_compare.py's "levers" stage: issue 13 item 3 asks whether a compiled decode pays on the GPU.
Run in the background beside the UNet's compile; prints one JSON line (compile seconds) at the end.

    compile_vae_decoder.py MODEL_FOLDER PACKAGE.pt2 --device cuda --dtype float16 [--tuning NAME]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

# diffusers' Upsample2D takes another branch from a batch of 64 on (as for the UNet's package).
BATCH = (1, 63)


def compile_decoder(folder: Path, package: Path, device: str, dtype: str, tuning: str) -> float:
    import torch
    from diffusers import AutoencoderKL
    from export_bundle import AOTI_LATENT_MAX, AOTI_TUNINGS, make_wrappers

    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=getattr(torch, dtype)).to(device).eval()
    _, _, VaeDecoder, _ = make_wrappers()
    decoder = VaeDecoder(vae).eval()
    example = (torch.randn(2, vae.config.latent_channels, 8, 12, device=device, dtype=getattr(torch, dtype)),)
    batch = torch.export.Dim("batch", min=BATCH[0], max=BATCH[1])
    lh = torch.export.Dim("latent_h", min=1, max=AOTI_LATENT_MAX)
    lw = torch.export.Dim("latent_w", min=1, max=AOTI_LATENT_MAX)
    t0 = time.monotonic()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(decoder, example, dynamic_shapes=({0: batch, 2: lh, 3: lw},))
        torch._inductor.aoti_compile_and_package(
            program, package_path=str(package),
            inductor_configs={"aot_inductor.package_constants_in_so": False, **AOTI_TUNINGS[tuning]})
    return time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="a diffusers pipeline folder (save_pretrained)")
    p.add_argument("package", type=Path, help="the .pt2 file to write")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="float16")
    p.add_argument("--tuning", default="default", help="export_bundle.py's --aoti-tuning names")
    a = p.parse_args(argv)
    seconds = compile_decoder(a.folder, a.package, a.device, a.dtype, a.tuning)
    print(json.dumps({"compile_s": round(seconds, 1), "package_mib": round(a.package.stat().st_size / 2**20, 2),
                      "batch": list(BATCH), "tuning": a.tuning}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
