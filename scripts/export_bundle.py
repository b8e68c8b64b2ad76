#!/usr/bin/env python3
"""Export a Stable Diffusion 1.x/2.x model to an sdinterp bundle.

    .venv/bin/python scripts/export_bundle.py MODEL OUT_DIR [--device cpu|cuda]
        [--dtype float32|float16|bfloat16] [--compat] [--aoti | --add-aoti] [--aoti-vae]

MODEL is a Hugging Face hub id (e.g. stable-diffusion-v1-5/stable-diffusion-v1-5), a local folder in
diffusers layout, or a single checkpoint file (.safetensors or .ckpt, the original Stable Diffusion
layout). OUT_DIR becomes the bundle: model.json, tokenizer/vocab.json + merges.txt, and four
TorchScript modules traced with torch.jit.trace:

    text_encoder.pt   input_ids int64 [B, 77]                     -> last_hidden_state [B, 77, hidden]
    unet.pt           sample [B, 4, h, w], timestep float32 [B],
                      encoder_hidden_states [B, 77, hidden]        -> noise prediction [B, 4, h, w]
    vae_decoder.pt    latents / scaling_factor [B, 4, h, w]        -> image in [-1, 1] [B, 3, 8h, 8w]
    vae_encoder.pt    image in [-1, 1] [B, 3, H, W]                -> unscaled latent mean [B, 4, H/8, W/8]

With --aoti, also unet.pt2 (--add-aoti adds it to a bundle exported before): the same UNet compiled
ahead of time by AOTInductor for the export device, without weights (sdinterp gives it unet.pt's),
for UNet batches of 2..63 and latents in multiples of the UNet's down factor; sdinterp uses it for
the calls it accepts and TorchScript for the others. --aoti-vae compiles the VAE decoder the same
way (vae_decoder.pt2, decode batches of 1..63, every latent size up to 128).

Tracing bakes the device and the dtype into the graphs, so a bundle is made for one of each and
model.json records them. After tracing, every module is saved, loaded back and run at a batch size
and a latent size other than the traced ones, next to the eager module; past a tolerance suited to
the dtype the export fails (exit status 1) and OUT_DIR is not written. OUT_DIR is written whole or
not at all: the bundle is built in a temporary folder beside it and renamed at the end.

The UNet is traced at a latent size that is not a multiple of its down factor, so that its
upsamplers take the sizes of the skip connections: the bundle renders every size diffusers does
(each side a multiple of 8), and model.json records it (unet.latent_multiple 1). The TorchScript
archives are written without their debug records (which name this machine's source files) and
model.json names local paths by their last component only: a bundle carries no trace of the
folders of the machine that made it, and the same model exported twice gives the same module
files (model.json differs in its export time, unless SOURCE_DATE_EPOCH is set, and its timings).

Only the download of a hub model needs the network (once; the hub cache keeps it). The bundle and
the sdinterp binary never do.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import hashlib
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bundle_weights beside this file, however it is run
from bundle_weights import load_module, module_tensors, save_module, weights_path  # noqa: E402

FORMAT_VERSION = 3  # 3: weights beside each module file (scripts/bundle_weights.py)
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".h5")
# Largest accepted max|traced - eager| / max|eager| per dtype. Traced and eager run the same kernels,
# so float32 agrees to rounding; half precision changes kernels with the batch size on GPUs.
TOLERANCES = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}
TRACE_BATCH, VERIFY_BATCH = 2, 3
# The AOTInductor UNet (--aoti) takes UNet batches of 2..63: torch.export specialises a batch of 1,
# and diffusers' Upsample2D branches on batch >= 64 (a .contiguous() for a large-batch kernel bug),
# so one package cannot span 64. 63 holds 31 frames with guidance. Latent sides: multiples of the
# UNet's down factor up to 128 (1024 px for SD); larger latents at batch 63 reach Upsample2D's other
# branch (more than 2^31 elements).
AOTI_BATCH = (2, 63)
AOTI_LATENT_MAX = 128
# The compiled VAE decoder (--aoti-vae) takes decode batches of 1..63 (the same Upsample2D branch at
# 64) and every latent size up to AOTI_LATENT_MAX (its upsamplers double whatever they get).
AOTI_VAE_BATCH = (1, 63)
# Settings for the compiled UNet (--aoti-tuning NAME), recorded in model.json: what --help says of
# each, inductor's settings, and the scaled_dot_product_attention kernel tried first when the
# package is compiled (torch.nn.attention.SDPBackend's member name; its attention kernels are chosen
# then, once, by LibTorch's priority order; None: that order, which tries flash, memory-efficient,
# math, then cuDNN). "default" is inductor's own. "cudnn-attention" takes cuDNN's fused attention
# where it supports the call (PyTorch 2.5's release notes: up to 75% faster than FlashAttention-2 on
# an H100; SD 1.5's 4096-token attention is a large share of its UNet at 512x512); what it gains at
# sdinterp's batch-60 calls is to be measured on a GPU (bench/README-gpu.md). "fast-diffusion" is
# what PyTorch's "Accelerating Generative AI III: Diffusion, Fast" and diffusers' torch.compile
# guide report for SD UNets (1x1 convolutions as matrix products, coordinate-descent tuning of the
# generated kernels' launch settings, no epilogue fusion): about 1.3x over eager for SDXL at batch 1
# on an A100. "max-autotune-gemm" adds inductor's benchmarked choice among GEMM kernels (longer
# compiles). The coordinate-descent and autotune settings act on GPU kernels only; on the CPU the
# attention kernel is LibTorch's own choice whatever is named. The order is the one
# bench/gpu_compare.py's --aoti-also tries them in, one more each GPU run (the settings with
# max_autotune_gemm last).
_FAST_DIFFUSION = {"conv_1x1_as_mm": True, "coordinate_descent_tuning": True,
                   "coordinate_descent_check_all_directions": True, "epilogue_fusion": False}
AOTI_TUNINGS = {
    "default": ("inductor's own settings", {}, None),
    "cudnn-attention": ("cuDNN's fused attention tried first, on a GPU", {}, "CUDNN_ATTENTION"),
    "fast-diffusion": ("1x1 convolutions as matrix products, coordinate-descent tuning, no epilogue fusion",
                       _FAST_DIFFUSION, None),
    "max-autotune-gemm": ("fast-diffusion and benchmarked GEMM kernels; longer compiles",
                          {**_FAST_DIFFUSION, "max_autotune_gemm": True}, None),
}
TOKENIZER_PROBES = [
    "a photo of a cat",
    "",
    "A painting of a squirrel eating a burger, trending on artstation!!",
    "Straße über café, naïve résumé 日本語 😀 don't it's",
    "word " * 90,
]


class ExportError(Exception):
    """A problem with the model or the arguments: one line, exit status 2."""


class VerificationError(Exception):
    """A traced module disagrees with the eager one: exit status 1."""


def log(message: str) -> None:
    print(f"export_bundle: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Arguments


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="export_bundle.py",
        description="Export a Stable Diffusion 1.x/2.x model (hub id, diffusers folder or single checkpoint file) "
        "to an sdinterp bundle folder.",
    )
    p.add_argument("model", metavar="MODEL", help="hub id, local diffusers folder, or a .safetensors/.ckpt checkpoint file")
    p.add_argument("out_dir", metavar="OUT_DIR", help="bundle folder to create")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="device the bundle runs on (tracing bakes it in; default cpu)")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32",
                   help="weights and activations dtype (tracing bakes it in; default float32)")
    p.add_argument("--compat", action="store_true",
                   help="classic attention (matmul + softmax) instead of scaled_dot_product_attention, "
                   "for LibTorch builds older than 2.0")
    p.add_argument("--revision", default=None, help="hub revision (branch, tag or commit) of MODEL")
    p.add_argument("--variant", default=None, help='weights variant of a diffusers model, e.g. "fp16"')
    p.add_argument("--config", default=None,
                   help="single-file MODEL only: diffusers config of the pipeline, a hub id or a local diffusers "
                   "folder (its config files suffice; no weights needed). Default: inferred from the checkpoint "
                   "and downloaded from the hub")
    p.add_argument("--original-config", default=None,
                   help="single-file MODEL only: the original Stable Diffusion YAML config (v1-inference.yaml, ...)")
    p.add_argument("--prediction-type", choices=["epsilon", "v_prediction"], default=None,
                   help="override the scheduler config's prediction_type (single files of SD 2.x 768-v models)")
    p.add_argument("--aoti", action="store_true",
                   help="also compile the UNet ahead of time with AOTInductor (unet.pt2, for the export device; "
                        "minutes for SD-sized models): sdinterp runs it with unet.pt's weights where it fits")
    p.add_argument("--add-aoti", action="store_true",
                   help="add unet.pt2 to the existing bundle OUT_DIR, exported before from the same MODEL for the "
                        "same --device and --dtype, instead of exporting it again")
    p.add_argument("--aoti-tuning", choices=list(AOTI_TUNINGS), default="default",
                   help="compile settings for --aoti/--add-aoti, recorded in model.json: "
                        + "; ".join(f"{name} ({what})" for name, (what, _, _) in AOTI_TUNINGS.items()))
    p.add_argument("--aoti-static", default=None, metavar="BATCHxHxW",
                   help="with --aoti/--add-aoti: compile the UNet for this one call shape (UNet batch, latent "
                        "height and width; 60x64x64 is the notebook's job: 30 frames with guidance at 512x512) "
                        "instead of every batch and size; sdinterp runs it where a call has that shape and the "
                        "TorchScript UNet elsewhere")
    p.add_argument("--aoti-reuse", default=None, metavar="PACKAGE",
                   help="with --aoti/--add-aoti: take this unet.pt2, compiled before for the same model, dtype, "
                        "GPU kind and torch (e.g. brought back from an earlier GPU run), instead of compiling; "
                        "it is verified like a fresh compile. Give --aoti-tuning it was compiled with")
    p.add_argument("--aoti-vae", action="store_true",
                   help="with --aoti/--add-aoti: also compile the VAE decoder (vae_decoder.pt2; decode batches "
                        "of 1..63, every latent size up to 128): sdinterp decodes through it where it fits")
    p.add_argument("--aoti-vae-reuse", default=None, metavar="PACKAGE",
                   help="with --aoti-vae: take this vae_decoder.pt2, compiled before as --aoti-reuse says, instead "
                        "of compiling; it is verified like a fresh compile")
    p.add_argument("--description", default=None, help="model.json description (default: names the source)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists")
    p.add_argument("--offline", action="store_true", help="never use the network (the hub cache only)")
    return p.parse_args(argv)


# --------------------------------------------------------------------------------------------------
# Hashing and provenance


def portable_arg(arg: str) -> str:
    """An argument as the bundle records it: a path (absolute, or naming something that exists) by
    its last component only, so that no bundle carries the folders of the machine that made it."""
    if os.path.isabs(arg) or os.path.exists(arg):
        return Path(arg).name
    return arg


def export_time() -> datetime.datetime:
    """Now, or SOURCE_DATE_EPOCH (the reproducible-builds convention) when it is set."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc)
    return datetime.datetime.now(datetime.timezone.utc)


def recorded_command(argv: list[str]) -> str:
    return shlex.join(["export_bundle.py", *(portable_arg(a) for a in argv)])


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(16 << 20):
            h.update(chunk)
    return h.hexdigest()


def component_weight_files(folder: Path, component: str, variant: str | None) -> list[Path]:
    """The weight files diffusers/transformers load for one component of a diffusers folder."""
    sub = folder / component
    if not sub.is_dir():
        return []
    files = [f for f in sorted(sub.iterdir()) if f.is_file() and f.name.endswith(WEIGHT_SUFFIXES)]

    def infix(f: Path) -> str | None:  # "diffusion_pytorch_model.fp16.safetensors" -> "fp16"
        parts = f.name.split(".")
        return parts[-2] if len(parts) > 2 else None

    chosen = [f for f in files if infix(f) == variant]
    if not chosen and variant is not None:
        chosen = [f for f in files if infix(f) is None]  # diffusers falls back to the main weights
    safetensors = [f for f in chosen if f.suffix == ".safetensors"]
    return safetensors or [f for f in chosen if f.suffix == ".bin"] or chosen


def describe_source(model: str, kind: str, folder: Path | None, variant: str | None) -> dict:
    """Source record: what MODEL was, its revision, and sha256 of the weight files read."""
    files: dict[str, str] = {}
    if kind == "single-file":
        path = Path(model)
        files[path.name] = sha256_file(path)
    else:
        assert folder is not None
        for component in ("text_encoder", "unet", "vae"):
            for f in component_weight_files(folder, component, variant):
                files[f"{component}/{f.name}"] = sha256_file(f)
    if len(files) == 1:
        combined = next(iter(files.values()))
    else:
        combined = hashlib.sha256("".join(f"{k} {v}\n" for k, v in sorted(files.items())).encode()).hexdigest()
    revision = None
    if folder is not None:
        # A hub cache snapshot is .../snapshots/<commit>/
        if folder.parent.name == "snapshots" and re.fullmatch(r"[0-9a-f]{40}", folder.name):
            revision = folder.name
    return {"model": portable_arg(model), "kind": kind, "revision": revision, "variant": variant,
            "weights_sha256": combined, "weight_files": files}


# --------------------------------------------------------------------------------------------------
# Loading


def load_pipeline(args: argparse.Namespace):
    import torch
    from diffusers import StableDiffusionPipeline

    torch_dtype = getattr(torch, args.dtype)
    common = dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False, dtype=torch_dtype)
    model = args.model
    path = Path(model)
    if path.is_file():
        if not path.name.lower().endswith(SINGLE_FILE_SUFFIXES):
            raise ExportError(f"{model}: a single checkpoint file must end in .safetensors or .ckpt")
        kw = dict(common)
        if args.config:
            kw["config"] = args.config
        if args.original_config:
            kw["original_config"] = args.original_config
        if args.offline:
            kw["local_files_only"] = True
        if args.revision or args.variant:
            raise ExportError("--revision and --variant apply to hub and diffusers-folder models only")
        log(f"loading single-file checkpoint {model}")
        pipe = StableDiffusionPipeline.from_single_file(str(path), **kw)
        return pipe, "single-file", None
    if args.config or args.original_config:
        raise ExportError("--config and --original-config apply to a single checkpoint file only")
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            if (path / "model.json").is_file():
                raise ExportError(f"{model}: an sdinterp bundle already (model.json), not a model to export; "
                                  "pass the diffusers folder, hub id or checkpoint it was made from")
            raise ExportError(f"{model}: not a diffusers folder (no model_index.json); "
                              "pass a hub id, a diffusers folder or a .safetensors/.ckpt file")
        if args.revision:
            raise ExportError("--revision applies to hub models only")
        folder, kind = path.resolve(), "folder"
    elif path.suffix.lower() in SINGLE_FILE_SUFFIXES or os.sep in model and not re.fullmatch(r"[\w.-]+/[\w.-]+", model):
        raise ExportError(f"{model}: no such file or folder")
    else:
        log(f"fetching {model} from the hub (or its cache)")
        folder = Path(StableDiffusionPipeline.download(
            model, revision=args.revision, variant=args.variant, local_files_only=args.offline,
            safety_checker=None, feature_extractor=None))
        kind = "hub"
    log(f"loading {folder}")
    pipe = StableDiffusionPipeline.from_pretrained(str(folder), variant=args.variant, local_files_only=True, **common)
    return pipe, kind, folder


def check_supported(pipe, prediction_override: str | None) -> dict:
    """Refuses what sdinterp cannot draw; returns the noise schedule record."""
    unet, vae, te = pipe.unet.config, pipe.vae.config, pipe.text_encoder.config
    if unet.in_channels != vae.latent_channels:
        raise ExportError(f"the UNet takes {unet.in_channels} channels but the VAE makes {vae.latent_channels}: "
                          "inpainting and depth models are not supported")
    for field in ("class_embed_type", "addition_embed_type", "time_cond_proj_dim", "encoder_hid_dim"):
        if unet.get(field) is not None:
            raise ExportError(f"unet config has {field}={unet.get(field)!r}: only plain text-to-image "
                              "Stable Diffusion 1.x/2.x UNets are supported")
    if not isinstance(unet.cross_attention_dim, int) or unet.cross_attention_dim != te.hidden_size:
        raise ExportError(f"unet cross_attention_dim {unet.cross_attention_dim} != text encoder hidden_size "
                          f"{te.hidden_size}")
    if not isinstance(unet.sample_size, int):
        raise ExportError(f"unet sample_size {unet.sample_size!r}: expected one integer")
    if vae.get("shift_factor") not in (None, 0, 0.0) or vae.get("latents_mean") is not None:
        raise ExportError("the VAE has shift_factor/latents_mean: not a Stable Diffusion 1.x/2.x VAE")
    sc = pipe.scheduler.config
    if sc.get("trained_betas") is not None:
        raise ExportError("the scheduler has trained_betas: sdinterp reads beta_start/beta_end/beta_schedule only")
    if sc.get("beta_schedule") not in ("scaled_linear", "linear"):
        raise ExportError(f"beta_schedule {sc.get('beta_schedule')!r} is not supported (scaled_linear, linear)")
    prediction = prediction_override or sc.get("prediction_type", "epsilon")
    if prediction not in ("epsilon", "v_prediction"):
        raise ExportError(f"prediction_type {prediction!r} is not supported (epsilon, v_prediction)")
    if sc.get("rescale_betas_zero_snr"):
        log("warning: the scheduler config asks for rescale_betas_zero_snr; sdinterp's schedulers do not rescale")
    return {"num_train_timesteps": int(sc.num_train_timesteps), "beta_start": float(sc.beta_start),
            "beta_end": float(sc.beta_end), "beta_schedule": sc.beta_schedule, "prediction_type": prediction}


# --------------------------------------------------------------------------------------------------
# Tokenizer


def export_tokenizer(tokenizer, out: Path, max_length: int) -> dict:
    """Writes vocab.json and merges.txt; checks that they tokenize as the model's tokenizer does."""
    from transformers import CLIPTokenizer

    tok_dir = out / "tokenizer"
    tok_dir.mkdir()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and type(backend.model).__name__ == "BPE":
        backend.model.save(str(tok_dir))  # vocab.json, merges.txt (with a "#version" line)
    elif getattr(tokenizer, "vocab_file", None) and getattr(tokenizer, "merges_file", None):
        shutil.copyfile(tokenizer.vocab_file, tok_dir / "vocab.json")
        shutil.copyfile(tokenizer.merges_file, tok_dir / "merges.txt")
    else:
        raise ExportError(f"tokenizer {type(tokenizer).__name__} is not a CLIP BPE tokenizer")
    for name in ("vocab.json", "merges.txt"):
        if not (tok_dir / name).is_file():
            raise ExportError(f"the tokenizer did not write {name}")
    ids = {"bos_id": tokenizer.bos_token_id, "eos_id": tokenizer.eos_token_id, "pad_id": tokenizer.pad_token_id}
    for k, v in ids.items():
        if not isinstance(v, int):
            raise ExportError(f"the tokenizer has no {k[:-3]} token")

    # The written files, read back as a plain CLIP tokenizer with the same special tokens, must give
    # exactly the pipeline's ids (what sdinterp's tokenizer reimplements).
    check = CLIPTokenizer(vocab=str(tok_dir / "vocab.json"), merges=str(tok_dir / "merges.txt"),
                          bos_token=tokenizer.bos_token, eos_token=tokenizer.eos_token,
                          pad_token=tokenizer.pad_token, unk_token=tokenizer.unk_token or tokenizer.eos_token)
    kw = dict(padding="max_length", max_length=max_length, truncation=True)
    for probe in TOKENIZER_PROBES:
        want, got = tokenizer(probe, **kw).input_ids, check(probe, **kw).input_ids
        if want != got:
            raise ExportError(f"tokenizer files written from {type(tokenizer).__name__} do not reproduce its ids "
                              f"for {probe[:40]!r}: {want[:8]}... vs {got[:8]}...")
    return {"kind": "clip-bpe", "vocab": "tokenizer/vocab.json", "merges": "tokenizer/merges.txt",
            "max_length": max_length, **ids}


# --------------------------------------------------------------------------------------------------
# Tracing and verification


def make_wrappers():
    import torch

    class TextEncoder(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids):
            return self.m(input_ids=input_ids).last_hidden_state

    class Unet(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, sample, timestep, encoder_hidden_states):
            return self.m(sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False)[0]

    class VaeDecoder(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, latents):
            return self.m.decode(latents, return_dict=False)[0]

    class VaeEncoder(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, image):
            return self.m.encode(image, return_dict=False)[0].mean

    return TextEncoder, Unet, VaeDecoder, VaeEncoder


def set_attention(pipe, compat: bool) -> str:
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    pipe.unet.set_attn_processor(AttnProcessor() if compat else AttnProcessor2_0())
    pipe.vae.set_attn_processor(AttnProcessor() if compat else AttnProcessor2_0())
    pipe.text_encoder.set_attn_implementation("eager" if compat else "sdpa")
    return "classic" if compat else "sdpa"


def compare(name: str, eager, traced, dtype: str, inputs_desc: str) -> dict:
    import torch

    e, t = eager.float(), traced.float()
    if e.shape != t.shape:
        raise VerificationError(f"{name}: traced output shape {list(t.shape)} != eager {list(e.shape)} ({inputs_desc})")
    finite = bool(torch.isfinite(e).all()) and bool(torch.isfinite(t).all())
    max_abs = float((e - t).abs().max()) if finite else float("inf")
    scale = float(e.abs().max()) if finite else float("nan")
    rel = max_abs / max(scale, 1e-6) if finite else float("inf")
    tol = TOLERANCES[dtype]
    return {"module": name, "inputs": inputs_desc, "shape": list(t.shape), "max_abs_error": max_abs,
            "scale": scale, "relative_error": rel, "tolerance": tol, "finite": finite, "ok": finite and rel <= tol}


def save_without_debug_records(module, path: Path) -> None:
    """torch.jit.save, less the archive's debug records (code/*.debug_pkl: source ranges that name the
    exporting machine's files, diffusers', torch's and this script's, by absolute path). The module
    loads and computes the same without them; the records kept are copied in the order torch wrote
    them, with torch's own archive writer (64-byte aligned tensor data, fixed timestamps), so the
    same model exported twice gives the same bytes."""
    import torch

    with tempfile.TemporaryDirectory(prefix=".with-debug-", dir=path.parent) as tmp:
        full = Path(tmp) / path.name  # the same file name: torch names the archive's root folder after it
        torch.jit.save(module, str(full))
        reader = torch._C.PyTorchFileReader(str(full))
        writer = torch._C.PyTorchFileWriter(str(path))
        written_by_writer = {"version", ".data/version", ".data/serialization_id", "byteorder"}
        version = next(v for v in ("version", ".data/version") if reader.has_record(v))
        writer.set_min_version(int(reader.get_record(version).decode().strip()))
        for name in reader.get_all_records():
            if name.endswith(".debug_pkl") or name in written_by_writer:
                continue
            data = reader.get_record(name)
            writer.write_record(name, data, len(data))
        writer.write_end_of_file()
        del writer, reader


def trace_save_verify(name: str, module, trace_inputs: tuple, verify_inputs: tuple, path: Path, dtype: str,
                      describe) -> tuple[dict, list[str]]:
    """Traces module at trace_inputs, saves it, loads the file back and compares it with the eager
    module at trace_inputs and at verify_inputs (another batch size and latent size)."""
    import torch

    t0 = time.monotonic()
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traced = torch.jit.trace(module, trace_inputs, check_trace=False)
        save_module(traced, path, save_without_debug_records)
    del traced
    gc.collect()
    notes = sorted({f"{Path(w.filename).name}:{w.lineno}: {str(w.message).split('.')[0]}" for w in caught
                    if issubclass(w.category, torch.jit.TracerWarning)})
    t_trace = time.monotonic() - t0
    loaded = load_module(path)
    loaded.eval()
    results = []
    with torch.no_grad():
        for inputs in (verify_inputs, trace_inputs):
            eager_out = module(*inputs)
            traced_out = loaded(*inputs)
            results.append(compare(name, eager_out, traced_out, dtype, describe(inputs)))
            del eager_out, traced_out
    del loaded
    gc.collect()
    report = {"file": path.name, "trace_inputs": describe(trace_inputs), "trace_seconds": round(t_trace, 2),
              "checks": results, "ok": all(r["ok"] for r in results)}
    return report, notes


def odd_latent_size(factor: int) -> tuple[int, int]:
    """A small latent size that is not a multiple of the UNet's overall down factor: the UNet then
    upsamples to the skip connections' sizes, which the trace records as shape computations, so the
    traced graph works at every size (at multiples of the factor too, with the same numbers)."""
    return 2 * factor + 1, 3 * factor - 1 if factor > 2 else 2 * factor + 1


def trace_all(pipe, out: Path, device: str, dtype: str, tokenizer_record: dict) -> dict:
    import torch

    torch_dtype = getattr(torch, dtype)
    TextEncoder, Unet, VaeDecoder, VaeEncoder = make_wrappers()
    g = torch.Generator().manual_seed(1234)

    def randn(*shape):
        return torch.randn(*shape, generator=g).to(device=device, dtype=torch_dtype)

    def shapes(inputs):
        return ", ".join(f"{str(x.dtype).replace('torch.', '')}{list(x.shape)}" for x in inputs)

    reports, notes = {}, {}
    tok = pipe.tokenizer
    max_length = tokenizer_record["max_length"]

    def ids(prompts):
        return tok(prompts, padding="max_length", max_length=max_length, truncation=True,
                   return_tensors="pt").input_ids.to(device)

    # Text encoder: real prompts, batch 2 traced, batch 3 verified (one prompt truncated).
    te = TextEncoder(pipe.text_encoder).eval()
    trace_ids = ids(TOKENIZER_PROBES[:2])
    verify_ids = ids(TOKENIZER_PROBES[2:5])
    log("tracing text_encoder.pt")
    reports["text_encoder"], notes["text_encoder"] = trace_save_verify(
        "text_encoder", te, (trace_ids,), (verify_ids,), out / "text_encoder.pt", dtype, shapes)
    with torch.no_grad():
        ctx_trace, ctx_verify = te(trace_ids), te(verify_ids)

    # UNet: traced at batch 2 on a latent size that is not a multiple of its down factor.
    up_factor = 2 ** (len(pipe.unet.config.block_out_channels) - 1)  # one upsampler per block but the last
    c = pipe.unet.config.in_channels
    th, tw = odd_latent_size(up_factor)
    vh, vw = 3 * up_factor, 2 * up_factor
    unet = Unet(pipe.unet).eval()
    t_trace = torch.tensor([999.0, 500.5], dtype=torch.float32, device=device)
    t_verify = torch.tensor([1.0, 250.25, 981.0], dtype=torch.float32, device=device)
    log(f"tracing unet.pt (latents {th}x{tw}, verified at {vh}x{vw} batch {VERIFY_BATCH})")
    reports["unet"], notes["unet"] = trace_save_verify(
        "unet", unet, (randn(TRACE_BATCH, c, th, tw), t_trace, ctx_trace),
        (randn(VERIFY_BATCH, c, vh, vw), t_verify, ctx_verify), out / "unet.pt", dtype, shapes)
    del ctx_trace, ctx_verify

    # VAE decoder and encoder: small odd sizes traced, other sizes verified.
    lc = pipe.vae.config.latent_channels
    sf = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    dh, dw = 5, 7
    log("tracing vae_decoder.pt")
    reports["vae_decoder"], notes["vae_decoder"] = trace_save_verify(
        "vae_decoder", VaeDecoder(pipe.vae).eval(), (randn(TRACE_BATCH, lc, dh, dw),),
        (randn(1, lc, 4, 6),), out / "vae_decoder.pt", dtype, shapes)

    def image(b, h, w):
        return (torch.rand(b, 3, h, w, generator=g) * 2 - 1).to(device=device, dtype=torch_dtype)

    log("tracing vae_encoder.pt")
    reports["vae_encoder"], notes["vae_encoder"] = trace_save_verify(
        "vae_encoder", VaeEncoder(pipe.vae).eval(), (image(TRACE_BATCH, dh * sf, dw * sf),),
        (image(1, 4 * sf, 6 * sf),), out / "vae_encoder.pt", dtype, shapes)
    return {"modules": reports, "tracer_warnings": {k: v for k, v in notes.items() if v}}


def error_line(e: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


def attention_first(kernel: str | None):
    """A context in which LibTorch's scaled_dot_product_attention priority order starts with
    `kernel` (an SDPBackend member's name, "CUDNN_ATTENTION"; the others follow in their order), or
    leaves it alone (None)."""
    import contextlib

    if kernel is None:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, _cur_sdpa_kernel_backends, sdpa_kernel

    first = getattr(SDPBackend, kernel)
    rest = [b for b in _cur_sdpa_kernel_backends(with_priority=True) if b != first]
    return sdpa_kernel([first, *rest], set_priority=True)


def compile_package(module, example: tuple, dynamic_shapes: tuple | None, path: Path, tuning: str, what: str) -> None:
    """torch.export with a dynamic batch and latent size (None: the example's shapes only), then
    AOTInductor without the weights, with the settings AOTI_TUNINGS[tuning] names (the attention
    kernel is chosen while both run)."""
    import torch

    _, inductor, attention = AOTI_TUNINGS[tuning]
    try:
        with torch.no_grad(), warnings.catch_warnings(), attention_first(attention):
            warnings.simplefilter("ignore")
            program = torch.export.export(module, example, dynamic_shapes=dynamic_shapes)
            torch._inductor.aoti_compile_and_package(
                program, package_path=str(path),
                inductor_configs={"aot_inductor.package_constants_in_so": False, **inductor})
    except Exception as e:
        raise ExportError(f"AOTInductor could not compile the {what}: {error_line(e)}") from e


def compile_aoti(name: str, what: str, module, inputs, dynamic_shapes, example: tuple, verify: tuple,
                 limits: dict, out: Path, device: str, dtype: str, tuning: str, reuse: Path | None,
                 reuse_option: str) -> tuple[dict, dict]:
    """Compiles `module` (the wrapper NAME.pt was traced from) with AOTInductor into out/NAME.pt2,
    without its weights (sdinterp hands it the TorchScript module's, so they are in memory once).
    Verified as sdinterp runs it: weights taken from the saved NAME.pt, outputs compared with the
    eager module at the `verify` shapes (inputs(*shape)). `limits`: the batches and latent sizes it
    takes (batch_min, batch_max, latent_multiple, latent_max). Returns (the manifest's record, a
    verification report). `reuse`: a package compiled before for the same model, dtype, GPU kind and
    torch (brought back from an earlier run): copied instead of compiled, then verified the same way."""
    import torch

    package_file = out / f"{name}.pt2"
    t0 = time.monotonic()
    if reuse is not None:
        log(f"reusing {reuse.name} instead of compiling {package_file.name} (verified below like a fresh compile)")
        shutil.copyfile(reuse, package_file)
    else:
        log(f"compiling {package_file.name} with AOTInductor (batch {limits['batch_min']}..{limits['batch_max']}, "
            f"latents in multiples of {limits['latent_multiple']} up to {limits['latent_max']}; minutes for "
            "SD-sized models)")
        compile_package(module, example, dynamic_shapes, package_file, tuning, what)
    compile_seconds = time.monotonic() - t0
    gc.collect()

    try:
        package = torch._inductor.aoti_load_package(str(package_file))
    except Exception as e:
        if reuse is None:
            raise
        raise ExportError(f"{reuse_option} {reuse.name}: cannot load it here (compiled by another torch or for "
                          f"another machine?): {error_line(e)}") from e
    scripted = load_module(out / f"{name}.pt")
    weights = module_tensors(scripted)
    needed = package.get_constant_fqns()
    missing = [n for n in needed if n not in weights]
    if missing:
        raise VerificationError(f"{package_file.name} needs weights {name}.pt lacks: {', '.join(missing[:3])}")
    package.load_constants({n: weights[n] for n in needed}, check_full_update=True, user_managed=True)
    signature = weights_signature({n: tuple(weights[n].shape) for n in needed})
    checks = []
    with torch.no_grad():
        for shape in verify:
            x = inputs(*shape)
            checks.append(compare(package_file.name, module(*x), package(*x),
                                  dtype, ", ".join(f"{list(t.shape)}" for t in x)))
    del package, scripted, weights
    gc.collect()
    record = package_record(package_file.name, limits, signature, compile_seconds, tuning, device)
    if reuse is not None:
        record.update(compile_seconds=0.0, reused=reuse.name)
    shapes = ("dynamic batch and latent size" if dynamic_shapes
              else "static, " + ", ".join(str(list(t.shape)) for t in example))
    report = {"file": package_file.name, "trace_inputs": f"torch.export, {shapes}",
              "trace_seconds": round(compile_seconds, 2), "checks": checks, "ok": all(r["ok"] for r in checks)}
    return record, report


def package_record(file: str, limits: dict, signature: str, compile_seconds: float, tuning: str,
                   device: str) -> dict:
    """A package's record in model.json (unet.compiled, vae.compiled), as sdinterp reads it."""
    record = {"kind": "aoti", "file": file, **limits, "weights_fnv1a64": signature,
              "compile_seconds": round(compile_seconds, 1), "tuning": tuning}
    if device == "cpu":
        # Inductor writes this count into the CPU kernels (omp num_threads); sdinterp checks it.
        from torch._inductor.utils import parallel_num_threads

        record["threads"] = int(parallel_num_threads())
    return record


def parse_static_shape(text: str) -> tuple[int, int, int]:
    """--aoti-static BATCHxHxW: (batch, latent height, latent width), or an ExportError. The package
    record says which calls it takes as a batch range and a latent multiple and maximum, so the
    height and width must be equal."""
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ExportError(f"--aoti-static {text}: give the UNet batch and latent size as BATCHxHxW, e.g. 60x64x64")
    batch, h, w = map(int, parts)
    if not AOTI_BATCH[0] <= batch <= AOTI_BATCH[1]:
        raise ExportError(f"--aoti-static {text}: the batch must be {AOTI_BATCH[0]}..{AOTI_BATCH[1]}")
    if h != w or not 1 <= h <= AOTI_LATENT_MAX:
        raise ExportError(f"--aoti-static {text}: the latent must be square, at most {AOTI_LATENT_MAX}x{AOTI_LATENT_MAX}")
    return batch, h, w


def compile_unet_aoti(diffusers_unet, hidden_size: int, out: Path, device: str, dtype: str,
                      max_length: int, tuning: str = "default", reuse: Path | None = None,
                      static: tuple[int, int, int] | None = None) -> tuple[dict, dict]:
    """--aoti: the UNet wrapper compiled into out/unet.pt2 (compile_aoti) for UNet batches AOTI_BATCH
    and latents in multiples of the UNet's down factor; with `static` (--aoti-static: batch, latent
    height, width) for that one shape, recorded as a batch range and latent multiple that take it only."""
    import torch

    torch_dtype = getattr(torch, dtype)
    _, Unet, _, _ = make_wrappers()
    unet = Unet(diffusers_unet).eval()
    f = 2 ** (len(diffusers_unet.config.block_out_channels) - 1)
    c = diffusers_unet.config.in_channels
    g = torch.Generator().manual_seed(4321)

    def inputs(b, h, w):
        return (torch.randn(b, c, h, w, generator=g).to(device=device, dtype=torch_dtype),
                torch.linspace(999.0, 1.0, b).to(device=device, dtype=torch.float32),
                torch.randn(b, max_length, hidden_size, generator=g).to(device=device, dtype=torch_dtype))

    if static is not None:
        b, h, w = static
        if h % f:
            raise ExportError(f"--aoti-static {b}x{h}x{w}: this UNet takes latents in multiples of {f}")
        limits = {"batch_min": b, "batch_max": b, "latent_multiple": h, "latent_max": h}
        return compile_aoti("unet", "UNet", unet, inputs, None, inputs(b, h, w), ((b, h, w),), limits, out, device,
                            dtype, tuning, reuse, "--aoti-reuse")
    batch = torch.export.Dim("batch", min=AOTI_BATCH[0], max=AOTI_BATCH[1])
    lh = f * torch.export.Dim("latent_h", min=1, max=AOTI_LATENT_MAX // f)
    lw = f * torch.export.Dim("latent_w", min=1, max=AOTI_LATENT_MAX // f)
    limits = {"batch_min": AOTI_BATCH[0], "batch_max": AOTI_BATCH[1], "latent_multiple": f,
              "latent_max": AOTI_LATENT_MAX}
    return compile_aoti("unet", "UNet", unet, inputs, ({0: batch, 2: lh, 3: lw}, {0: batch}, {0: batch}),
                        inputs(4, 2 * f, 3 * f), ((VERIFY_BATCH, 3 * f, 2 * f), (AOTI_BATCH[0], f, 4 * f)),
                        limits, out, device, dtype, tuning, reuse, "--aoti-reuse")


def vae_decoder_aoti_spec(vae, device: str, dtype: str):
    """The compiled VAE decoder's module, inputs(b, h, w), dynamic shapes, example inputs and limits
    (AOTI_VAE_BATCH, every latent size up to AOTI_LATENT_MAX): for --aoti-vae and
    bench/compile_vae_decoder.py."""
    import torch

    torch_dtype = getattr(torch, dtype)
    _, _, VaeDecoder, _ = make_wrappers()
    decoder = VaeDecoder(vae).eval()
    g = torch.Generator().manual_seed(4322)
    channels = vae.config.latent_channels

    def inputs(b, h, w):
        return (torch.randn(b, channels, h, w, generator=g).to(device=device, dtype=torch_dtype),)

    batch = torch.export.Dim("batch", min=AOTI_VAE_BATCH[0], max=AOTI_VAE_BATCH[1])
    lh = torch.export.Dim("latent_h", min=1, max=AOTI_LATENT_MAX)
    lw = torch.export.Dim("latent_w", min=1, max=AOTI_LATENT_MAX)
    limits = {"batch_min": AOTI_VAE_BATCH[0], "batch_max": AOTI_VAE_BATCH[1], "latent_multiple": 1,
              "latent_max": AOTI_LATENT_MAX}
    return decoder, inputs, ({0: batch, 2: lh, 3: lw},), inputs(2, 8, 12), limits


def compile_vae_decoder_aoti(vae, out: Path, device: str, dtype: str, tuning: str = "default",
                             reuse: Path | None = None) -> tuple[dict, dict]:
    """--aoti-vae: the VAE decoder wrapper compiled into out/vae_decoder.pt2 (compile_aoti)."""
    decoder, inputs, dynamic_shapes, example, limits = vae_decoder_aoti_spec(vae, device, dtype)
    return compile_aoti("vae_decoder", "VAE decoder", decoder, inputs, dynamic_shapes, example,
                        ((VERIFY_BATCH, 5, 7), (1, 4, 6)), limits, out, device, dtype, tuning, reuse,
                        "--aoti-vae-reuse")


def weights_signature(shapes: dict[str, tuple]) -> str:
    """FNV-1a 64 of "NAME D0,D1,...\\n" per weight, sorted by name: sdinterp recomputes it from unet.pt
    (src/bundle/compiled_package.cpp) and refuses a package compiled for weights of other shapes."""
    text = "".join(f"{name} {','.join(str(d) for d in dims)}\n" for name, dims in sorted(shapes.items()))
    h = 14695981039346656037  # the FNV-1a 64 offset basis
    for byte in text.encode():
        h = ((h ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def graph_ops(path: Path) -> set[str]:
    import torch

    return {node.kind() for node in torch.jit.load(str(path)).inlined_graph.nodes()}


def print_report(verification: dict) -> None:
    print("verification (traced module loaded from its file vs eager module):")
    print(f"  {'module':<13} {'inputs':<58} {'max abs err':>11} {'rel err':>9} {'tol':>7}  result")
    for name, rep in verification["modules"].items():
        for chk in rep["checks"]:
            print(f"  {name:<13} {chk['inputs'][:58]:<58} {chk['max_abs_error']:>11.3g} {chk['relative_error']:>9.2g} "
                  f"{chk['tolerance']:>7.0e}  {'ok' if chk['ok'] else 'FAILED'}")
    for name, notes in verification.get("tracer_warnings", {}).items():
        for n in notes:
            print(f"  note: {name}: {n[:160]}")
    sys.stdout.flush()


# --------------------------------------------------------------------------------------------------
# Main


def reuse_path(option: str | None) -> Path | None:
    return Path(option).absolute() if option else None


def compile_asked(args: argparse.Namespace, pipe, out: Path, max_length: int) -> dict:
    """The packages --aoti and --aoti-vae ask for, compiled into `out` (which holds the TorchScript
    modules they take their weights from): {"unet": (record, report), "vae_decoder": ...}."""
    static = parse_static_shape(args.aoti_static) if args.aoti_static else None
    done = {"unet": compile_unet_aoti(pipe.unet, int(pipe.text_encoder.config.hidden_size), out, args.device,
                                      args.dtype, max_length, args.aoti_tuning, reuse_path(args.aoti_reuse),
                                      static)}
    if args.aoti_vae:
        done["vae_decoder"] = compile_vae_decoder_aoti(pipe.vae, out, args.device, args.dtype, args.aoti_tuning,
                                                       reuse_path(args.aoti_vae_reuse))
    return done


# The manifest's section that records each module's package, and the verification report's name.
PACKAGE_RECORDS = {"unet": ("unet", "unet_aoti"), "vae_decoder": ("vae", "vae_decoder_aoti")}


def add_aoti(args: argparse.Namespace, pipe, source: dict, out: Path) -> None:
    """--add-aoti: compiles unet.pt2 (and with --aoti-vae vae_decoder.pt2) for the bundle OUT_DIR made
    from the same weights. The files are replaced by rename, the packages first: model.json names
    them only once they are whole."""
    manifest = json.loads((out / "model.json").read_text(encoding="utf-8"))
    if manifest["source"]["weights_sha256"] != source["weights_sha256"]:
        raise ExportError(f"{args.model} is not the model {out} was exported from (weights differ); export it anew")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.aoti-", dir=out.parent))
    try:
        for name in PACKAGE_RECORDS:
            for f in (out / f"{name}.pt", weights_path(out / f"{name}.pt")):  # the weights beside it too (format 3)
                if f.is_file():
                    os.symlink(f, tmp / f.name)
        done = compile_asked(args, pipe, tmp, int(manifest["tokenizer"]["max_length"]))
        reports = {PACKAGE_RECORDS[name][1]: report for name, (_, report) in done.items()}
        print_report({"modules": reports})
        for name, (_, report) in done.items():
            if not report["ok"]:
                worst = max(c["relative_error"] for c in report["checks"])
                raise VerificationError(f"{name}.pt2 disagrees with the eager module (relative error {worst:.3g})")
        for name, (record, _) in done.items():
            manifest[PACKAGE_RECORDS[name][0]]["compiled"] = record
        manifest["export"]["verification"]["modules"].update(reports)
        manifest["export"]["add_aoti_command"] = recorded_command(args.argv)
        (tmp / "model.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        umask = os.umask(0)
        os.umask(umask)
        for name in done:
            os.chmod(tmp / f"{name}.pt2", 0o666 & ~umask)  # an ordinary file of the bundle, as the others
            os.replace(tmp / f"{name}.pt2", out / f"{name}.pt2")
        os.replace(tmp / "model.json", out / "model.json")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_export_args(args: argparse.Namespace, out: Path) -> None:
    """Refuses, before anything loads, options that do not go together and an --add-aoti target that
    is not a bundle this export can add to; with --add-aoti, takes the bundle's attention (--compat)."""
    if args.aoti_tuning != "default" and not (args.aoti or args.add_aoti):
        raise ExportError(f"--aoti-tuning {args.aoti_tuning} is for the compiled UNet: add --aoti or --add-aoti")
    if args.aoti_static is not None:
        if not (args.aoti or args.add_aoti):
            raise ExportError("--aoti-static is for the compiled UNet: add --aoti or --add-aoti")
        parse_static_shape(args.aoti_static)
    if args.aoti_reuse is not None:
        if not (args.aoti or args.add_aoti):
            raise ExportError("--aoti-reuse is for the compiled UNet: add --aoti or --add-aoti")
        if not Path(args.aoti_reuse).is_file():
            raise ExportError(f"--aoti-reuse {args.aoti_reuse}: no such file")
    if args.aoti_vae and not (args.aoti or args.add_aoti):
        raise ExportError("--aoti-vae compiles the VAE decoder beside the UNet: add --aoti or --add-aoti")
    if args.aoti_vae_reuse is not None:
        if not args.aoti_vae:
            raise ExportError("--aoti-vae-reuse is for the compiled VAE decoder: add --aoti-vae")
        if not Path(args.aoti_vae_reuse).is_file():
            raise ExportError(f"--aoti-vae-reuse {args.aoti_vae_reuse}: no such file")
    if args.add_aoti:
        if not (out / "model.json").is_file():
            raise ExportError(f"--add-aoti: {out} is not a bundle (no model.json)")
        manifest = json.loads((out / "model.json").read_text(encoding="utf-8"))
        if (manifest.get("device"), manifest.get("dtype")) != (args.device, args.dtype):
            raise ExportError(f"--add-aoti: {out} is a {manifest.get('device')}/{manifest.get('dtype')} bundle; "
                              f"pass --device {manifest.get('device')} --dtype {manifest.get('dtype')}")
        if manifest.get("format_version", 1) < 2:
            raise ExportError(f"--add-aoti: {out} records no source model (format_version 1); export it anew")
        args.aoti = True
        args.compat = manifest.get("attention") == "classic"
    elif out.exists() and not args.overwrite:
        raise ExportError(f"{out} exists; pass --overwrite to replace it")


def bundle_manifest(args: argparse.Namespace, pipe, attention: str, tokenizer_record: dict, compiled: dict,
                    schedule: dict, source: dict, verification: dict) -> dict:
    """model.json of a bundle exported from `pipe`: the modules' files and shapes, the compiled
    packages' records (`compiled`), the noise schedule, the source model and the export's record."""
    import diffusers
    import torch
    import transformers

    te_cfg, unet_cfg, vae_cfg = pipe.text_encoder.config, pipe.unet.config, pipe.vae.config
    vae_scale_factor = 2 ** (len(vae_cfg.block_out_channels) - 1)
    return {
        "format": "sdinterp-bundle",
        "format_version": FORMAT_VERSION,
        "description": args.description or f"{portable_arg(args.model)} exported by scripts/export_bundle.py "
                                           f"for {args.device}/{args.dtype}",
        "device": args.device,
        "dtype": args.dtype,
        "attention": attention,
        "tokenizer": tokenizer_record,
        "text_encoder": {"file": "text_encoder.pt", "hidden_size": int(te_cfg.hidden_size)},
        "unet": {"file": "unet.pt", "in_channels": int(unet_cfg.in_channels),
                 "sample_size": int(unet_cfg.sample_size), "cross_attention_dim": int(unet_cfg.cross_attention_dim),
                 "latent_multiple": 1, **({"compiled": compiled["unet"]} if "unet" in compiled else {})},
        "vae": {"decoder": "vae_decoder.pt", "encoder": "vae_encoder.pt",
                "latent_channels": int(vae_cfg.latent_channels), "scale_factor": vae_scale_factor,
                "scaling_factor": float(vae_cfg.scaling_factor),
                **({"compiled": compiled["vae_decoder"]} if "vae_decoder" in compiled else {})},
        "noise_schedule": schedule,
        "source": source,
        "export": {
            "tool": "scripts/export_bundle.py",
            "command": recorded_command(args.argv),
            "created": export_time().isoformat(timespec="seconds"),
            "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "compat": bool(args.compat),
            "verification": verification,
        },
    }


def publish_folder(tmp: Path, out: Path) -> None:
    """Renames the finished folder `tmp` into place at `out`, replacing what is there."""
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rename(out, old / out.name)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)


def export(args: argparse.Namespace) -> int:
    out = Path(args.out_dir).absolute()
    check_export_args(args, out)
    if args.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    started = time.monotonic()

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise ExportError("--device cuda: no CUDA device is visible to torch here; export on the machine "
                          "(or kind of machine) the bundle will run on")
    if args.device == "cuda" and args.dtype == "float32":
        # sdinterp runs float32 bundles without TF32 (full float32, as on the CPU); trace, compile and
        # verify the same way (PyTorch lets cuDNN convolutions use TF32 by default).
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    if args.aoti and args.device == "cpu":
        log("note: on the CPU the AOTInductor UNet only saves TorchScript's warm-up (measured); --aoti is meant "
            "for CUDA")
    if args.aoti_vae and args.device == "cpu":
        log("note: on the CPU the compiled VAE decoder was slower than the traced one (SD-1.5's at 256x256: "
            "4.35-4.71 s against 4.07-4.23 s, measured); --aoti-vae is meant for CUDA")
    if args.device == "cpu" and args.dtype == "float16":
        log("warning: float16 on the CPU is slow and not better than float32; prefer float32 or bfloat16")

    try:
        pipe, kind, folder = load_pipeline(args)
    except ExportError:
        raise
    except Exception as e:  # hub, file format and config errors: one line, not a traceback
        raise ExportError(f"cannot load {args.model}: {error_line(e)}") from e
    schedule = check_supported(pipe, args.prediction_type)
    attention = set_attention(pipe, args.compat)
    pipe.to(args.device)  # loaded in the bundle's dtype already
    for m in (pipe.unet, pipe.vae, pipe.text_encoder):
        m.eval()
        m.requires_grad_(False)
    log(f"loaded in {time.monotonic() - started:.1f} s; UNet parameters: "
        f"{sum(p.numel() for p in pipe.unet.parameters()) / 1e6:.1f} M")

    log("hashing the weight files")
    source = describe_source(args.model, kind, folder, args.variant)
    if args.add_aoti:
        add_aoti(args, pipe, source, out)
        added = "unet.pt2 and vae_decoder.pt2" if args.aoti_vae else "unet.pt2"
        log(f"added {added} to {out} in {time.monotonic() - started:.1f} s")
        return 0

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the bundle is an ordinary folder
    try:
        max_length = int(min(pipe.tokenizer.model_max_length, pipe.text_encoder.config.max_position_embeddings))
        tokenizer_record = export_tokenizer(pipe.tokenizer, tmp, max_length)
        verification = trace_all(pipe, tmp, args.device, args.dtype, tokenizer_record)
        compiled = {}
        if args.aoti:
            for name, (record, report) in compile_asked(args, pipe, tmp, tokenizer_record["max_length"]).items():
                compiled[name] = record
                verification["modules"][PACKAGE_RECORDS[name][1]] = report
        print_report(verification)
        failed = [f"{name} ({chk['inputs']}: relative error {chk['relative_error']:.3g} > {chk['tolerance']:.0e})"
                  for name, rep in verification["modules"].items() for chk in rep["checks"] if not chk["ok"]]
        if failed:
            raise VerificationError("traced modules disagree with the eager model: " + "; ".join(failed))
        if args.compat:
            for f in ("text_encoder.pt", "unet.pt", "vae_decoder.pt", "vae_encoder.pt"):
                if "aten::scaled_dot_product_attention" in graph_ops(tmp / f):
                    raise VerificationError(f"--compat: {f} still calls scaled_dot_product_attention")

        manifest = bundle_manifest(args, pipe, attention, tokenizer_record, compiled, schedule, source,
                                   verification)
        with open(tmp / "model.json", "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2)
            f.write("\n")
        publish_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"wrote {out} in {time.monotonic() - started:.1f} s ({args.device}/{args.dtype}, {attention} attention)")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    args.argv = list(argv)
    try:
        return export(args)
    except VerificationError as e:
        log(f"error: verification failed: {e}; nothing written to {args.out_dir}")
        return 1
    except ExportError as e:
        log(f"error: {e}")
        return 2
    except KeyboardInterrupt:
        log("interrupted; nothing written")
        return 130


if __name__ == "__main__":
    sys.exit(main())
