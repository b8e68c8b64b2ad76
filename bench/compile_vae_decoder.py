#!/usr/bin/env python3
"""Compiles a diffusers model's VAE decoder with AOTInductor as scripts/export_bundle.py --aoti-vae does
(torch.export with a dynamic batch and latent size, the package without its weights), for
bench/gpu_compare.py's "levers" stage and its row "(d) aoti compiled-decode": issue 13 item 3 asks
whether a compiled decode pays on the GPU. Run in the background beside the UNet's compile; prints one
JSON line at the end (compile seconds, and the record export_bundle.py --aoti-vae would write into
model.json's vae.compiled for the package).

    compile_vae_decoder.py MODEL_FOLDER PACKAGE.pt2 --device cuda --dtype float16 [--tuning NAME] [--reuse PACKAGE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))


def compile_decoder(folder: Path, package: Path, device: str, dtype: str, tuning: str,
                    reuse: Path | None = None) -> dict:
    """The package and its model.json record (vae.compiled) for a bundle exported from `folder` for
    `device`/`dtype`: the exporter's own spec and record, so that gpu_compare can hand the package to
    sdinterp without compiling it again. `reuse`: a package an earlier run compiled for the same
    model, dtype, GPU kind and torch, copied instead of compiled (the record says so); the levers
    compare its frames with the eager decoder's."""
    import torch
    from diffusers import AutoencoderKL
    from export_bundle import compile_package, package_record, vae_decoder_aoti_spec, weights_signature

    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=getattr(torch, dtype)).to(device).eval()
    decoder, _, dynamic_shapes, example, limits = vae_decoder_aoti_spec(vae, device, dtype)
    t0 = time.monotonic()
    names = None
    if reuse is not None:
        shutil.copyfile(reuse, package)
        try:
            names = torch._inductor.aoti_load_package(str(package)).get_constant_fqns()
        except Exception as e:  # another torch or GPU kind: compiled here instead
            print(f"compile_vae_decoder: {reuse.name} cannot be used here ({type(e).__name__}); compiling",
                  file=sys.stderr, flush=True)
            reuse = None
    if names is None:
        compile_package(decoder, example, dynamic_shapes, package, tuning, "VAE decoder")
        names = torch._inductor.aoti_load_package(str(package)).get_constant_fqns()
    seconds = time.monotonic() - t0
    # The weights the package asks for, by the wrapper's names (those vae_decoder.pt was traced with).
    weights = dict(decoder.named_parameters())
    weights.update(decoder.named_buffers())
    signature = weights_signature({n: tuple(weights[n].shape) for n in names})
    record = package_record(package.name, limits, signature, seconds, tuning, device)
    if reuse is not None:
        record.update(compile_seconds=0.0, reused=reuse.name)
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="a diffusers pipeline folder (save_pretrained)")
    p.add_argument("package", type=Path, help="the .pt2 file to write")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="float16")
    p.add_argument("--tuning", default="default", help="export_bundle.py's --aoti-tuning names")
    p.add_argument("--reuse", type=Path, default=None, metavar="PACKAGE",
                   help="take this package, compiled by an earlier run, instead of compiling")
    a = p.parse_args(argv)
    record = compile_decoder(a.folder, a.package, a.device, a.dtype, a.tuning, a.reuse)
    print(json.dumps({"compile_s": record["compile_seconds"], "package_mib": round(a.package.stat().st_size / 2**20, 2),
                      "batch": [record["batch_min"], record["batch_max"]], "tuning": a.tuning, "record": record}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
