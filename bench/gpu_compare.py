#!/usr/bin/env python3
"""sdinterp against diffusers on one GPU, in one go (issue 7, item 3). See bench/README-gpu.md.

    python3 bench/gpu_compare.py [--device cuda] [--sdinterp build/sdinterp] [--out DIR]
    python3 bench/gpu_compare.py --smoke --device cpu          # tiny model, 64x64, 3 frames, 2 steps

Builds a Stable Diffusion pipeline with random weights from the real SD-1.5 configs (no download;
the tokenizer is models/tiny-sd/tokenizer), saves it in diffusers layout, exports it with
scripts/export_bundle.py, and times the same walk (the notebook's slerp-latent example: two latents
from the seed, slerp between them, 30 frames x 15 LMS steps at 512x512, guidance 8) done three ways:

  (a) notebook loop: StableDiffusionPipeline in float32, one frame per pipeline call
  (b) diffusers in float16, all frames in one pipeline call (latents batch = frames); also (b2) the
      same with VAE slicing (diffusers' own memory option)
  (c) sdinterp generate on the float16 bundle: the whole command, with its model load, plus the
      generation time it reports itself; again with --max-vram 10
  (d) sdinterp on the same bundle after export_bundle.py --add-aoti has compiled its UNet with
      AOTInductor (--unet-engine aoti); the compile time is reported, not counted (done once per
      model, dtype and GPU). The compile runs in the background from the export on, beside the
      sdinterp build and the golden check; nothing is timed until it is over (or stopped, when the
      timed stages would no longer fit)
  (e) bench/diffusers_e2e.py: the same job as (c)'s whole command done by a Python script with
      diffusers in a fresh process (imports, the saved pipeline loaded onto the device, all frames in
      one call, PNG frames written), timed from process start to exit

and, before (a), the levers of issue 13 items 2 and 3 on diffusers' own modules in this process: one
UNet call at the walk's guided batch, contiguous and channels_last, and the walk's VAE decode in
sdinterp's chunks, eager, channels_last, and through the decoder compiled with AOTInductor by
bench/compile_vae_decoder.py (in the background once the build is done; OUT/vae_compile.log);

and checks correctness on the device: tiny-sd (models/tiny-sd, rebuilt as a diffusers pipeline by
tests/python/tiny_sd.py) re-exported in float32 for the device, with a compiled UNet on CUDA, runs
the four golden cases (tests/golden) through sdinterp with each UNet engine; every frame must be
within the golden tolerance of diffusers' CPU float32 frames. Then diffusers itself renders the four
cases on the device in float32 (issue 13's parity criterion): sdinterp's frames must differ from those
in no more 8-bit values than diffusers on the device differs from the golden frames, and by at most 1.

Wall times exclude model loading for diffusers (the pipeline is built once and warmed up at the
shapes it will run); sdinterp's speed-ups use its own generation time (text + sampling + decode,
model loaded) and the table also gives the whole command. Peak GPU memory: torch's
max_memory_allocated for the diffusers runs, and for every run the device's used memory sampled
through NVML (nvidia-smi when pynvml is missing) every 20 ms, above what was in use before the run
(for diffusers: before CUDA was initialised, so the CUDA context and the weights count, as they
do for the sdinterp process).

Results: a table on stdout, OUT/results.json and OUT/results.md (OUT: --out, or $OUT, or
./bench/results/gpu-compare), OUT/export.log (every export but the background compile), OUT/aoti.log,
OUT/sdinterp.log, OUT/frame0_compare.png (first frame of (b), sdinterp and (a) side by side). results.* are rewritten after every stage, so a run stopped by a
time limit still leaves what it measured.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOKENIZER_DIR = REPO / "models" / "tiny-sd" / "tokenizer"
EXPORTER = REPO / "scripts" / "export_bundle.py"
GIB = float(1 << 30)

# The notebook's scheduler: LMSDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
# beta_schedule="scaled_linear", num_train_timesteps=1000).
SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")

# The model configs (the real SD-1.5 ones with random weights, and the same architecture in
# miniature for --smoke) and the output rescaling are the export tests' own.
sys.path.insert(0, str(REPO / "tests" / "python"))
from random_pipelines import CONFIGS, rescale_outputs  # noqa: E402

# The exporter's module wrappers, for the levers stage's compiled VAE decoder (imported there: it
# needs diffusers, which the GPU machine gets from the carried wheels).
sys.path.insert(0, str(EXPORTER.parent))
from export_bundle import AOTI_TUNINGS, attention_first  # noqa: E402  (the compile settings' names, in the order tried)

# Packages an earlier GPU run brought back (OUT/unet-DTYPE-TUNING.pt2), carried to the next run in
# this folder (ignored by git: a package holds the compiling machine's paths) for --aoti-reuse auto.
AOTI_CACHE = REPO / "bench" / "gpu" / "cache"

# The golden check's extra run of each case: TorchScript, one frame a call (--batch 1).
PER_FRAME_RUN = "torchscript-batch1"

# sdinterp's switches (src/bundle/bundle.cpp): cuDNN's timed choice of convolution algorithms (off
# unless 1), the first use of CUDA (the context started while LibTorch loads, and CUDA's libraries
# used beside the load; on unless 0), and the weights' copy to the device through pinned buffers
# by several threads (off unless 1); and the attention kernel LibTorch tries first for the
# TorchScript modules (SDINTERP_SDPA_FIRST: cudnn, flash, efficient or math; unset, LibTorch's order).
CUDNN_BENCHMARK_ENV = "SDINTERP_CUDNN_BENCHMARK"
SDPA_FIRST_ENV = "SDINTERP_SDPA_FIRST"
CUDA_WARM_UP_ENV = "SDINTERP_CUDA_WARM_UP"
PINNED_UPLOAD_ENV = "SDINTERP_PINNED_UPLOAD"
# LibTorch's CUDA memory settings: sdinterp sets expandable segments unless this (or its newer name,
# PYTORCH_ALLOC_CONF) is set (src/cli/runtime_loader.cpp); a row sets the fixed segments back.
CUDA_ALLOC_CONF_ENV = "PYTORCH_CUDA_ALLOC_CONF"

SD15 = CONFIGS["sd15"]
TINY = CONFIGS["sd1-tiny"]

# The notebook's second example (slerp between two latents).
PROMPT = ("Sci-fi digital painting of an alien landscape with otherworldly plants, strange creatures, "
          "and distant planets.")
NEGATIVE = ("poorly drawn,cartoon, 3d, disfigured, bad art, deformed, poorly drawn, extra limbs, close up, b&w, "
            "weird colors, blurry")


# When this script started: each log line says the seconds since, so that a run's log is its
# timeline (what overlapped what, where the budget went).
STARTED = time.monotonic()


def log(msg: str) -> None:
    print(f"gpu_compare: [{time.monotonic() - STARTED:5.1f} s] {msg}", flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    p.add_argument("--dtype", choices=["float16", "bfloat16", "float32"], default=None,
                   help="dtype of (b) and of the exported bundle (default float16 on CUDA, float32 on the CPU)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny model, 64x64, 3 frames, 2 steps: checks the whole script in seconds (CPU too)")
    p.add_argument("--frames", type=int, default=None, help="frames (default 30; smoke 3)")
    p.add_argument("--steps", type=int, default=None, help="LMS steps (default 15; smoke 2)")
    p.add_argument("--size", type=int, default=None, help="height = width (default 512; smoke 64)")
    p.add_argument("--guidance", type=float, default=8.0)
    p.add_argument("--seed", type=int, default=1234, help="seed of the walk's two latents")
    p.add_argument("--model-seed", type=int, default=0, help="seed of the random weights")
    p.add_argument("--prompt", default=PROMPT)
    p.add_argument("--negative", default=NEGATIVE)
    p.add_argument("--sdinterp", default=str(REPO / "build" / "sdinterp"), help="the sdinterp binary")
    p.add_argument("--sdinterp-lib-path", default="",
                   help="prepended to LD_LIBRARY_PATH for sdinterp only (the carried Debian prefix)")
    p.add_argument("--sdinterp-run", action="append", default=None, metavar="NAME=FLAGS",
                   help='an sdinterp generate run on the TorchScript UNet: a name and extra flags (NAME=VALUE '
                        'words are environment variables), repeatable (default: "default=", "warm=" and, optional, '
                        f'"warm sdpa-cudnn={SDPA_FIRST_ENV}=cudnn"); a name with the word "warm" runs `sdinterp '
                        'batch` on two copies of the job and reports the second (model loaded and warmed up by the '
                        'first)')
    p.add_argument("--wait-build", default="", metavar="FILE",
                   help="before timing anything, wait until FILE (the background build's exit status) exists")
    p.add_argument("--wait-also", action="append", default=[], metavar="FILE",
                   help="before timing anything, wait until FILE exists too (repeatable; gpu_compare.sh passes "
                        "the AOTInductor probe's exit-status file: the probe runs beside the untimed stages)")
    p.add_argument("--skip-notebook-loop", action="store_true", help="skip (a)")
    p.add_argument("--skip-diffusers-batch", action="store_true", help="skip (b) and (b2)")
    p.add_argument("--skip-vae-slicing", action="store_true", help="skip (b2)")
    p.add_argument("--skip-sdinterp", action="store_true", help="skip the export, (c), (d) and (e)")
    p.add_argument("--skip-diffusers-e2e", action="store_true",
                   help="skip (e), the diffusers script timed from process start to written frames")
    p.add_argument("--aoti-tuning", default="default", choices=list(AOTI_TUNINGS),
                   help="export_bundle.py --aoti-tuning for row (d)'s compile: " + ", ".join(AOTI_TUNINGS)
                        + " (default: default)")
    p.add_argument("--aoti-reuse", default="auto", metavar="PACKAGE",
                   help="a unet.pt2 an earlier run brought back (OUT/unet-DTYPE-TUNING.pt2; same torch, GPU kind "
                        "and model): row (d) takes it instead of compiling (export_bundle.py --aoti-reuse); if it "
                        "cannot be used, the UNet is compiled. auto (the default): bench/gpu/cache/"
                        "unet-DTYPE-TUNING.pt2 when that file is there (carried, not committed) and this is no "
                        "--smoke run; none: always compile. The VAE decoder's package for the levers and row (d) "
                        "compiled-decode likewise: bench/gpu/cache/vae_decoder-DTYPE-TUNING.pt2 unless none")
    p.add_argument("--aoti-also", default="auto", metavar="TUNING",
                   help="a second compile of the UNet with these settings (export_bundle.py --aoti-tuning), or "
                        f"'{STATIC_ALSO}' (the default settings, for this run's UNet call only: --aoti-static), in "
                        "the background on a copy of the bundle (hard links), and a warm run of sdinterp on it "
                        "beside row (d)'s: auto (the default), when row (d)'s package is reused on CUDA (the "
                        "compile then fits in the run), is the first with no package in bench/gpu/cache ("
                        + ", then ".join([*list(AOTI_TUNINGS)[1:], STATIC_ALSO]) + "), else none")
    p.add_argument("--skip-smoke-command", action="store_true",
                   help="skip running the GPU runners' smoke command (scripts/smoke.py --device DEVICE, issue 13 "
                        "item 5) in the untimed part of the run")
    p.add_argument("--skip-aoti", action="store_true",
                   help="skip (d): compiling the bundle's UNet with AOTInductor (export_bundle.py --add-aoti) "
                        "and the sdinterp runs on it")
    p.add_argument("--skip-golden", action="store_true",
                   help="skip the golden check (tiny-sd re-exported in float32 for this device, the four golden "
                        "cases through sdinterp)")
    p.add_argument("--skip-levers", action="store_true",
                   help="skip the levers stage: one UNet call and the walk's VAE decode timed in this process "
                        "(eager, channels_last, and the decoder compiled with AOTInductor in the background by "
                        "bench/compile_vae_decoder.py), issue 13 items 2 and 3")
    p.add_argument("--aoti-run", action="append", default=None, metavar="NAME=FLAGS",
                   help='sdinterp runs on the compiled UNet, as --sdinterp-run (default: "aoti=", "aoti warm=", '
                        f'then, optional, "aoti warm cudnn-benchmark={CUDNN_BENCHMARK_ENV}=1" when a package is '
                        f'reused, "aoti no-warm-up={CUDA_WARM_UP_ENV}=0" and "aoti pinned-upload='
                        f'{PINNED_UPLOAD_ENV}=1"); --unet-engine aoti is added')
    p.add_argument("--no-rescale", action="store_true",
                   help="keep the raw random init (default: scale the UNet's and VAE's last convs so noise "
                        "predictions have unit scale and images are mostly unsaturated, as tiny-sd)")
    p.add_argument("--workdir", default="", help="scratch folder for the model and bundle (default: a temp folder)")
    p.add_argument("--keep-workdir", action="store_true")
    p.add_argument("--out", default=os.environ.get("OUT") or "bench/results/gpu-compare", help="results folder")
    p.add_argument("--deadline", type=float, default=0.0,
                   help="Unix time by which everything must be done (stages that no longer fit are skipped)")
    p.add_argument("--budget-s", type=float, default=0.0, help="seconds from now (instead of --deadline)")
    a = p.parse_args(argv)
    a.frames = a.frames or (3 if a.smoke else 30)
    a.steps = a.steps or (2 if a.smoke else 15)
    a.size = a.size or (64 if a.smoke else 512)
    a.cuda = a.device.startswith("cuda")
    a.dtype = a.dtype or ("float16" if a.cuda else "float32")
    if a.budget_s and not a.deadline:
        a.deadline = time.time() + a.budget_s
    if a.sdinterp_run is None:
        # TorchScript's rows: the compiled UNet is the default engine on CUDA, so these two are the
        # comparison only ("max-vram 10=--max-vram 10", issue 7's row, on request). A third, optional
        # (rows past ESSENTIAL_SDINTERP_ROWS run only while (e) and (a) keep their time): warm with
        # cuDNN's fused attention tried first, which LibTorch's own order never reaches (the levers
        # time it on diffusers' UNet; export_bundle.py --aoti-tuning cudnn-attention compiles it in).
        a.sdinterp_run = ["default=", "warm=", f"warm sdpa-cudnn={SDPA_FIRST_ENV}=cudnn"]
    # The VAE decoder's package (the levers, row (d) compiled-decode) is taken from the cache as the
    # UNet's is, unless reuse is turned off.
    vae_cached = aoti_cached(a.dtype, a.aoti_tuning, "vae_decoder")
    a.vae_reuse = str(vae_cached) if a.aoti_reuse != "none" and vae_cached.is_file() and not a.smoke else None
    # Whether this run compiles the UNet (or takes a carried package) for row (d).
    compiles = a.cuda and not a.smoke and not a.skip_aoti and not a.skip_sdinterp
    if a.aoti_reuse == "auto":
        cached = aoti_cached(a.dtype, a.aoti_tuning)
        a.aoti_reuse = str(cached) if cached.is_file() and compiles else None
    elif a.aoti_reuse == "none":
        a.aoti_reuse = None
    if a.aoti_run is None:
        # Every row adds to what the UNet's compile must leave for the timed stages
        # (_timed_stages_need): cuDNN's timed choice (also a lever) only when a reused package saved
        # the compile's time.
        a.aoti_run = ["aoti=", "aoti warm=", f"aoti fixed-segments={CUDA_ALLOC_CONF_ENV}=expandable_segments:False",
                      f"aoti no-warm-up={CUDA_WARM_UP_ENV}=0", f"aoti pinned-upload={PINNED_UPLOAD_ENV}=1"]
        if a.aoti_reuse:
            a.aoti_run.insert(2, f"aoti warm cudnn-benchmark={CUDNN_BENCHMARK_ENV}=1")
    a.also_candidates = []
    if a.aoti_also == "auto":
        # The next setting in the exporter's list that no earlier run has brought back, then the
        # package for this run's call shape: one more each run. With row (d)'s package carried, in
        # the compile time that saves; without (the first run on a GPU kind), compiled beside row
        # (d)'s at a lower priority (_start_aoti), and stopped first when time runs short.
        # The static package (default settings) before the settings that benchmark GEMM kernels
        # while compiling, which may not finish in a run's time: they must not hold up the rest.
        tunings = [t for t in AOTI_TUNINGS if t != a.aoti_tuning]
        slow = [t for t in tunings if AOTI_TUNINGS[t][1].get("max_autotune_gemm")]
        choices = [t for t in tunings if t not in slow] + ([STATIC_ALSO] if static_shape(a) else []) + slow
        uncached = [c for c in choices if not aoti_cached(a.dtype, also_label(a, c)).is_file()]
        # The candidates in their order: the run may pass over one that cannot work on this GPU
        # (Comparison._attention_choice).
        a.also_candidates = uncached if compiles else []
        a.aoti_also = a.also_candidates[0] if a.also_candidates else None
    elif a.aoti_also == "none":
        a.aoti_also = None
    elif a.aoti_also == STATIC_ALSO and not static_shape(a):
        p.error(f"--aoti-also {STATIC_ALSO}: this run's UNet call ({a.frames} frames) is beyond a package's batch")
    elif a.aoti_also not in (*AOTI_TUNINGS, STATIC_ALSO):
        p.error(f"--aoti-also {a.aoti_also}: use auto, none, {STATIC_ALSO} or one of {', '.join(AOTI_TUNINGS)}")
    return a


# --aoti-also static: the UNet compiled with the default settings for this run's UNet call only
# (export_bundle.py --aoti-static: issue 13's static shapes for the common job, beside row (d)'s
# package for every batch and size), carried as unet-DTYPE-default-static-BxHxW.pt2.
STATIC_ALSO = "static"


def unet_batch(a: argparse.Namespace) -> int:
    """The UNet batch of this run's job with all its frames in one call: two rows a frame with guidance."""
    return 2 * a.frames if a.guidance > 1 else a.frames


def static_shape(a: argparse.Namespace) -> str | None:
    """The UNet call of this run's job as export_bundle.py --aoti-static takes it (BATCHxHxW: all the
    frames in one call, two rows each with guidance), or None beyond the largest batch a package takes."""
    from export_bundle import AOTI_BATCH

    batch = unet_batch(a)
    side = a.size // 8
    return f"{batch}x{side}x{side}" if AOTI_BATCH[0] <= batch <= AOTI_BATCH[1] else None


def also_settings(a: argparse.Namespace, also: str) -> tuple[str, str | None]:
    """(export_bundle.py --aoti-tuning, --aoti-static or None) for an --aoti-also choice."""
    return ("default", static_shape(a)) if also == STATIC_ALSO else (also, None)


def settings_label(tuning: str, static: str | None) -> str:
    """The name part of a package compiled with settings `tuning`, for one call shape `static`
    (--aoti-static BATCHxHxW) or every one."""
    return f"{tuning}-static-{static}" if static else tuning


def also_label(a: argparse.Namespace, also: str) -> str:
    """The name part of an --aoti-also choice's package (package_label of its record)."""
    return settings_label(*also_settings(a, also))


def package_label(record: dict) -> str:
    """A package's name part from its model.json record: its settings, and the one call shape it
    takes when it was compiled for one (--aoti-static)."""
    static = None
    if "batch_min" in record and record["batch_min"] == record.get("batch_max") \
            and record.get("latent_multiple") == record.get("latent_max"):
        static = f"{record['batch_max']}x{record['latent_max']}x{record['latent_max']}"
    return settings_label(record.get("tuning", "default"), static)


def aoti_package_name(dtype: str, tuning: str, module: str = "unet") -> str:
    """The name a compiled module ("unet", "vae_decoder") is brought back under in OUT, and carried
    under in AOTI_CACHE."""
    return f"{module}-{dtype}-{tuning}.pt2"


def aoti_cached(dtype: str, tuning: str, module: str = "unet") -> Path:
    """Where a package an earlier run brought back is carried."""
    return AOTI_CACHE / aoti_package_name(dtype, tuning, module)


# A background compile that yields to row (d)'s UNet compile (the VAE decoder's, a second UNet's):
# both decide rows, but row (d)'s decides whether the issue's targets are measured at all.
LOWER_PRIORITY = ["nice", "-n", "10"]

# Packages above this size are not brought back (the device tool returns files up to 16 MiB).
KEPT_PACKAGE_MAX_BYTES = 16 * 2**20


def keep_package(package: Path, record: dict, out: Path, dtype: str, module: str) -> str | None:
    """A package this run compiled (not reused; `record` is its model.json record), copied into OUT
    as aoti_package_name says, to be brought back for later runs on the same torch, GPU kind and
    model (carried in bench/gpu/cache). Its name in OUT, or None when it is not kept."""
    if record.get("reused") or package.stat().st_size > KEPT_PACKAGE_MAX_BYTES:
        return None
    kept = out / aoti_package_name(dtype, package_label(record), module)
    shutil.copyfile(package, kept)
    return kept.name


# The attention kernels LibTorch's priority order can start with (SDPBackend members; sdinterp's
# SDINTERP_SDPA_FIRST names them flash, efficient, cudnn and math: kernel_name), beside its own
# order ("default").
ATTENTION_FIRST = ["FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH"]


def kernel_name(backend: str) -> str:
    """An SDPBackend member's name as package_kernels and SDINTERP_SDPA_FIRST name the kernel
    ("CUDNN_ATTENTION": "cudnn", "MATH": "math")."""
    return backend.lower().removesuffix("_attention")


# In a package's generated wrapper (C++): each call of an operator it leaves to LibTorch
# ("aoti_torch_cuda_convolution(", "aoti_torch_cuda_mm_out(", ...), and the fused attention kernels
# among them (_scaled_dot_product_cudnn_attention; on the CPU, ..._flash_attention_for_cpu).
EXTERN_CALL = re.compile(r"\baoti_torch_(?:cpu|cuda)_(\w+?)(?:_out)?\(")
ATTENTION_KERNEL = re.compile(r"_scaled_dot_product_({})_attention".format(
    "|".join(kernel_name(b) for b in ATTENTION_FIRST if b != "MATH")))


def package_kernels(package: Path) -> dict:
    """What a compiled package's code calls outside its own kernels, from its wrapper's source: the
    attention kernels ("flash", "efficient", "cudnn") and the number of call sites of each operator
    (how a tuning changed the code: 1x1 convolutions as matrix products, an attention kernel)."""
    with zipfile.ZipFile(package) as z:
        source = "".join(z.read(n).decode(errors="replace") for n in z.namelist() if n.endswith("wrapper.cpp"))
    return {"attention_kernels": sorted(set(ATTENTION_KERNEL.findall(source))),
            "extern_calls": dict(sorted(Counter(EXTERN_CALL.findall(source)).items()))}


def attention_kernel_named(tuning: str) -> str | None:
    """The attention kernel a compile setting puts first ("cudnn" for cudnn-attention), as
    package_kernels names it, or None."""
    backend = AOTI_TUNINGS[tuning][2]
    return kernel_name(backend) if backend else None


def bundle_with_decoder(bundle: Path, package: Path, record: dict, dst: Path) -> None:
    """`dst`: the bundle `bundle` (hard links) with the compiled VAE decoder `package` added as
    export_bundle.py --aoti-vae adds it (vae_decoder.pt2, model.json's vae.compiled = `record`).
    model.json is written anew, so `bundle`'s stays as it was."""
    link_copy(bundle, dst)
    manifest = json.loads((bundle / "model.json").read_text())
    manifest["vae"]["compiled"] = {**record, "file": "vae_decoder.pt2"}
    (dst / "model.json").unlink()
    (dst / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.copyfile(package, dst / "vae_decoder.pt2")


# --------------------------------------------------------------------------------------------------
# GPU memory sampling


class MemorySampler:
    """Samples the device's used memory (and, where NVML lists it, one process's) in a thread."""

    def __init__(self, index: int, interval: float = 0.02):
        self.index, self.interval = index, interval
        self.kind = None
        self._nvml = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self.kind = "nvml"
        except Exception:
            if shutil.which("nvidia-smi"):
                self.kind = "nvidia-smi"
        self._thread = None

    def used(self) -> float | None:
        """Bytes in use on the device now."""
        if self.kind == "nvml":
            return float(self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used)
        if self.kind == "nvidia-smi":
            r = subprocess.run(["nvidia-smi", "-i", str(self.index), "--query-gpu=memory.used",
                                "--format=csv,noheader,nounits"], capture_output=True, text=True)
            try:
                return float(r.stdout.split()[0]) * (1 << 20)
            except (IndexError, ValueError):
                return None
        return None

    def _process_used(self, pid: int) -> float | None:
        if self.kind != "nvml":
            return None
        try:
            for proc in self._nvml.nvmlDeviceGetComputeRunningProcesses(self._handle):
                if proc.pid == pid and proc.usedGpuMemory is not None:
                    return float(proc.usedGpuMemory)
        except Exception:
            return None
        return None

    def start(self, pid: int | None = None) -> None:
        self.peak, self.peak_process, self.samples = 0.0, None, 0
        self.pid = pid
        self._stop = threading.Event()
        self._smi = None
        if self.kind == "nvidia-smi":  # one long-running nvidia-smi, not one process per sample
            self._smi = subprocess.Popen(["nvidia-smi", "-i", str(self.index), "--query-gpu=memory.used",
                                          "--format=csv,noheader,nounits", "-lms", str(int(self.interval * 1000))],
                                         stdout=subprocess.PIPE, text=True)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._smi is not None:
                line = self._smi.stdout.readline()
                if not line:
                    return
                try:
                    v = float(line.split()[0]) * (1 << 20)
                except (IndexError, ValueError):
                    continue
            else:
                v = self.used()
                if self.pid is not None:
                    pv = self._process_used(self.pid)
                    if pv is not None:
                        self.peak_process = max(self.peak_process or 0.0, pv)
            if v is not None:
                self.peak = max(self.peak, v)
                self.samples += 1
            if self._smi is None:
                time.sleep(self.interval)

    def stop(self) -> dict:
        if self._thread is None:
            return {}
        self._stop.set()
        if self._smi is not None:
            self._smi.terminate()
            self._smi.wait()
        self._thread.join(timeout=5)
        self._thread = None
        return {"peak_used_bytes": self.peak, "samples": self.samples, "peak_process_bytes": self.peak_process}


# --------------------------------------------------------------------------------------------------
# Models


def make_pipeline(cfg: dict, device: str, model_seed: int, rescale: bool):
    """A StableDiffusionPipeline (float32) with random weights made on `device`, LMS scheduler."""
    import torch
    from diffusers import AutoencoderKL, LMSDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    def build(on: str):
        torch.manual_seed(model_seed)
        with torch.device(on):  # initialise on the device: seconds instead of a minute for 860M on a CPU
            return (UNet2DConditionModel(**cfg["unet"]).eval(), AutoencoderKL(**cfg["vae"]).eval(),
                    CLIPTextModel(CLIPTextConfig(**cfg["text"])).eval())

    try:
        unet, vae, text_encoder = build(device)
    except Exception as e:  # some module refusing a device context: build on the CPU and move
        log(f"building on {device} failed ({type(e).__name__}: {e}); building on the CPU")
        unet, vae, text_encoder = (m.to(device) for m in build("cpu"))
    for m in (unet, vae, text_encoder):
        m.requires_grad_(False)
    if rescale:
        rescale_outputs(unet, vae, cfg["text"]["hidden_size"], device)
    tokenizer = CLIPTokenizer(vocab=str(TOKENIZER_DIR / "vocab.json"), merges=str(TOKENIZER_DIR / "merges.txt"),
                              pad_token="<|endoftext|>", model_max_length=77)
    # steps_offset=1: StableDiffusionPipeline sets it anyway (with a deprecation warning); LMS's default
    # "linspace" spacing does not read it.
    scheduler = LMSDiscreteScheduler(**SCHEDULE, prediction_type="epsilon", steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def attention_calls(pipe, latent_hw: tuple[int, int]) -> list[dict]:
    """Each distinct scaled_dot_product_attention call of one UNet call and one VAE decode at batch
    1 (the shapes past the batch: heads, tokens, head size; and the keys' for cross-attention), with
    how many times it is made."""
    import torch
    import torch.nn.functional as F

    seen: dict = {}
    module = ["unet"]
    original = F.scaled_dot_product_attention

    def record(q, k, v, *args, **kwargs):
        key = (module[0], tuple(q.shape[1:]), tuple(k.shape[1:]))
        seen[key] = seen.get(key, 0) + 1
        return original(q, k, v, *args, **kwargs)

    device, dtype = pipe.unet.device, pipe.unet.dtype
    F.scaled_dot_product_attention = record
    try:
        with torch.inference_mode():
            x = torch.zeros(1, pipe.unet.config.in_channels, *latent_hw, device=device, dtype=dtype)
            ctx = torch.zeros(1, 77, pipe.text_encoder.config.hidden_size, device=device, dtype=dtype)
            pipe.unet(x, torch.tensor([981.0], device=device), encoder_hidden_states=ctx)
            module[0] = "vae_decoder"
            pipe.vae.decode(torch.zeros(1, pipe.vae.config.latent_channels, *latent_hw, device=device, dtype=dtype))
    finally:
        F.scaled_dot_product_attention = original
    return [{"module": m, "query": list(q), "key": list(k), "calls": n} for (m, q, k), n in seen.items()]


def attention_choice(calls: list[dict], batches: dict, device: str, dtype) -> list[dict]:
    """For each attention call (attention_calls) at its module's batch (`batches`): the kernel
    LibTorch picks in its own priority order ("default") and with each of ATTENTION_FIRST tried
    first, as SDPBackend names (ERROR where none can take it). Only the tensors' shapes, dtype and
    device decide; nothing runs."""
    import torch
    from torch.nn.attention import SDPBackend

    chosen = []
    for call in calls:
        batch = batches[call["module"]]
        q = torch.empty(batch, *call["query"], device=device, dtype=dtype)
        k = torch.empty(batch, *call["key"], device=device, dtype=dtype)
        picks = {}
        for first in [None, *ATTENTION_FIRST]:
            with attention_first(first):
                picks[first or "default"] = SDPBackend(torch._fused_sdp_choice(q, k, k)).name
        chosen.append({**call, "batch": batch, **picks})
        del q, k
    return chosen


def walk_latents(seed: int, frames: int, latent_hw: tuple[int, int], channels: int = 4):
    """The notebook's slerp-latent walk as sdinterp draws it: torch.manual_seed(seed); torch.randn(2, ...)
    on the CPU in float32; frame i = slerp(t_i) with t = linspace(0, 1, frames), slerp weights in float64
    (numpy's slerp with DOT_THRESHOLD 0.9995), applied in float32."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    lat = torch.randn(2, channels, *latent_hw)
    v0, v1 = lat[0], lat[1]
    x, y = v0.double().flatten(), v1.double().flatten()
    denom = float(x.norm() * y.norm())
    dot = float((x * y).sum()) / denom if denom > 0 else 1.0
    out = []
    for t in np.linspace(0.0, 1.0, frames):
        t = float(t)
        if abs(dot) > 0.9995:
            wa, wb = 1.0 - t, t
        else:
            theta_0 = math.acos(dot)
            sin_theta_0 = math.sin(theta_0)
            wa, wb = math.sin(theta_0 - theta_0 * t) / sin_theta_0, math.sin(theta_0 * t) / sin_theta_0
        f = v0 * wa
        if wb != 0.0:
            f = f + v1 * wb
        out.append(f)
    return torch.stack(out)


# --------------------------------------------------------------------------------------------------
# Helpers


def triage_variants(torch_lib: Path) -> list[tuple[str, dict]]:
    """The ways a crashed command is run again (issue 13 item 1), each with the environment it adds:
    LibTorch's libraries preloaded, first in everyone's symbol scope. On the H100 run of 2026-12-06
    either preload cured the compiled UNet's crash, as did opening sdinterp's modules RTLD_GLOBAL,
    which is sdinterp's default since (src/io/module_loader.cpp): a crash now is another one, and
    these say whether it is of the same kind (which library a symbol binds to)."""
    return [("preload libtorch_cpu.so", {"LD_PRELOAD": str(torch_lib / "libtorch_cpu.so")}),
            ("preload libtorch.so", {"LD_PRELOAD": str(torch_lib / "libtorch.so")})]


def link_copy(src: Path, dst: Path) -> None:
    """`dst` as a copy of the folder `src` made of hard links (a second bundle without a second 2 GB):
    the exporter replaces the files it changes by rename, so the two stay apart."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, copy_function=os.link)


ENV_WORD = re.compile(r"([A-Z][A-Z0-9_]*)=(.*)")


def split_env(flags: list[str]) -> tuple[list[str], dict]:
    """A run's extra words: NAME=VALUE words (upper-case names) are its environment, the rest flags."""
    rest, env = [], {}
    for word in flags:
        match = ENV_WORD.fullmatch(word)
        if match:
            env[match[1]] = match[2]
        else:
            rest.append(word)
    return rest, env


# sdinterp's crash handler (src/cli/interrupt.cpp) ends a crashed process with this line (the signal
# in words, then the plea that only a crash gets), its call stack and exit status 1, so a crash is
# not seen as a death by signal.
CRASH_LINE = re.compile(r"^sdinterp: internal error: .*\(a bug: please report it with the command line and "
                        r"this stack\)$", re.MULTILINE)


def crashed(rc, stderr: str) -> bool:
    """Whether a command died of a crash: killed by a signal, or sdinterp's crash handler reported one."""
    return (isinstance(rc, int) and rc < 0) or (rc == 1 and bool(CRASH_LINE.search(stderr or "")))


def load_breakdown(seconds: dict | None) -> str:
    """The bundle's load from a row's metadata (`bundle_load_s`), in a few words; "" without it."""
    if not seconds or seconds.get("total") is None:
        return ""
    words = [f"bundle load {seconds['total']:.3f} s"]
    weights = seconds.get("weights") or {}
    if seconds.get("unet") is not None:
        unet = f"UNet {seconds['unet']:.3f}"
        if weights.get("unet") is not None:
            unet += f" (weights {weights['unet']:.3f})"
        words.append(unet)
    if seconds.get("cuda_context"):
        words.append(f"context at {seconds['cuda_context']:.3f}")
    return ", ".join(words)


def error_line(stderr: str) -> str:
    """The line that says what went wrong: sdinterp's own error line (not the call stack after a
    crash's), else the last line."""
    lines = (stderr or "").strip().splitlines()
    said = [line for line in lines if line.startswith("sdinterp: ")]
    return (said[-1] if said else lines[-1] if lines else "")[:200]


def filesystem_bindings(ld_dir: Path) -> dict:
    """From LD_DEBUG=bindings output files: how many std::filesystem symbol references of each object
    bound to each library, as "object -> library": count."""
    import re

    pattern = re.compile(r"binding file (\S+) \[\d+\] to (\S+) \[\d+\]: \w+ symbol `(_ZN[K]?St10filesystem\S*)'")
    counts: dict = {}
    for f in sorted(ld_dir.glob("ld*")):
        for line in f.read_text(errors="replace").splitlines():
            m = pattern.search(line)
            if m:
                key = f"{Path(m.group(1)).name} -> {Path(m.group(2)).name}"
                counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:20])


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(torch.device(device))


def peak_above(memory: dict, baseline: float | None) -> float | None:
    """The device's peak use in GiB above `baseline` bytes, from the memory sampler's record (None
    without a baseline or samples)."""
    if baseline is None or not memory.get("samples"):
        return None
    return round((memory["peak_used_bytes"] - baseline) / GIB, 2)


def run_measures(meta_path: Path, events: list[tuple[float, dict]], wall: float, warm: bool, memory: dict) -> dict:
    """A finished sdinterp row's measures: from its metadata (generation time and its parts, batch,
    decode chunk, calls by engine, device, dtype, LibTorch, load and memory records); from its
    progress events, the load (launch to the first event: run_walk starts once the bundle is
    loaded), the end (last `done` to exit) and with `warm` the first job's seconds; from the memory
    sampler (_launch_sdinterp), the device's peak above its use at launch and the process's own."""
    fields: dict = {}
    starts = [t for t, e in events if e.get("event") == "start"]
    dones = [t for t, e in events if e.get("event") == "done"]
    try:
        meta = json.loads(meta_path.read_text())
        info = meta.get("sdinterp", {})
        timings = info.get("timings_s", {})
        fields.update(gen_s=timings.get("total"), timings_s=timings, batch=meta.get("batch"),
                      decode_chunk=info.get("decode_chunk"), unet_calls=info.get("unet_calls"),
                      decode_calls=info.get("decode_calls"),
                      device_reported=info.get("device"), dtype_reported=info.get("dtype"),
                      libtorch=info.get("libtorch"), bundle_load_s=info.get("bundle_load_s"),
                      cuda_memory_peaks_gib=info.get("cuda_memory_peaks_gib"))
    except (OSError, json.JSONDecodeError) as e:
        fields["note"] = f"no metadata: {e}"
    fields.update(load_s=round(starts[0], 3) if starts else None,
                  after_last_done_s=round(wall - dones[-1], 3) if dones else None)
    if warm and len(starts) >= 2 and dones:
        fields["first_job_s"] = round(starts[1] - starts[0], 3)
    baseline = memory.get("baseline_used_bytes")
    if (peak := peak_above(memory, baseline)) is not None:
        fields["peak_device_gib"] = peak
        fields["baseline_device_gib"] = round(baseline / GIB, 2)
    if memory.get("peak_process_bytes"):
        fields["peak_process_gib"] = round(memory["peak_process_bytes"] / GIB, 2)
    return fields


class LeverTimes:
    """The levers stage's record: `fields[key]`, a lever's median time after a warm-up pass, or its
    error (a lever's failure is a finding; the others stand), or a note that it was out of time."""

    def __init__(self, clock: Clock, device: str, fields: dict):
        self.clock, self.device, self.fields = clock, device, fields

    @staticmethod
    def failed(e: Exception) -> str:
        return f"error: {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"

    def time(self, key: str, fn, repeats: int, scale: float = 1.0, digits: int = 1):
        """fields[key] = the median time of fn over `repeats` calls (times `scale`), or its error;
        returns fn's output (None when it failed or was skipped)."""
        import statistics

        if self.clock.left() < 45:
            self.fields[key] = "skipped: out of time"
            return None
        try:
            out = fn()  # warm-up
            sync(self.device)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                out = fn()
                sync(self.device)
                times.append(time.perf_counter() - t0)
            self.fields[key] = round(statistics.median(times) * scale, digits)
            return out
        except Exception as e:  # noqa: BLE001 - a lever's failure is a finding
            self.fields[key] = self.failed(e)
            return None


@contextlib.contextmanager
def cudnn_benchmark(torch):
    """cuDNN's timed algorithm choice on for the block, off after it (sdinterp's default)."""
    try:
        torch.backends.cudnn.benchmark = True
        yield
    finally:
        torch.backends.cudnn.benchmark = False


def psnr(a, b) -> dict:
    import numpy as np

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return {"error": f"shapes {list(a.shape)} != {list(b.shape)}"}
    mse = float(((a - b) ** 2).mean())
    return {"psnr_db": (float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)),
            "max_abs_diff": float(np.abs(a - b).max()), "mean_abs_diff": float(np.abs(a - b).mean())}


def image_stats(img) -> dict:
    import numpy as np

    a = np.asarray(img)
    return {"mean": round(float(a.mean()), 2), "std": round(float(a.std()), 2),
            "saturated_fraction": round(float(((a == 0) | (a == 255)).mean()), 4)}


class Clock:
    def __init__(self, deadline: float):
        self.deadline = deadline

    def left(self) -> float:
        return self.deadline - time.time() if self.deadline else float("inf")


# --------------------------------------------------------------------------------------------------
# The run


class Comparison:
    def __init__(self, args):
        self.a = args
        self.out = Path(args.out).absolute()
        self.out.mkdir(parents=True, exist_ok=True)
        self.clock = Clock(args.deadline)
        self.results: dict = {"stages": {}, "comparisons": {}, "notes": []}
        self.frames0: dict = {}
        self.work = Path(args.workdir).absolute() if args.workdir else None
        self.workaround: dict | None = None  # {"name", "env"}: what the crash triage found runs cleanly

    # ---- results

    def note(self, msg: str) -> None:
        log(msg)
        self.results["notes"].append(msg)

    def stage(self, name: str, **fields) -> dict:
        self.results["stages"].setdefault(name, {}).update(fields)
        self.write()
        return self.results["stages"][name]

    def write(self) -> None:
        (self.out / "results.json").write_text(json.dumps(self.results, indent=2, default=str) + "\n")
        (self.out / "results.md").write_text(self.markdown())

    def rows(self) -> list[dict]:
        st = self.results["stages"]
        base_b = st.get("b", {}).get("gen_s")
        base_a = st.get("a", {}).get("gen_s")
        rows = []
        for key, s in st.items():
            if "gen_s" not in s and "wall_s" not in s:
                continue
            gen = s.get("gen_s")
            rows.append({
                "key": key, "method": s.get("method", key), "wall_s": s.get("wall_s"), "gen_s": gen,
                "vs_b": (base_b / gen) if (base_b and gen) else None,
                "vs_a": (base_a / gen) if (base_a and gen) else None,
                "peak_device_gib": s.get("peak_device_gib"), "peak_torch_gib": s.get("peak_torch_allocated_gib"),
                "note": s.get("note", ""),
            })
        return rows

    def markdown(self) -> str:
        m = self.results.get("meta", {})
        lines = [f"# sdinterp vs diffusers: {m.get('gpu', m.get('device', '?'))}", "",
                 f"{m.get('frames')} frames x {m.get('steps')} LMS steps, {m.get('size')}x{m.get('size')}, guidance "
                 f"{m.get('guidance')}, slerp-latent walk; random-weight {m.get('model')} model; "
                 f"torch {m.get('torch')}, diffusers {m.get('diffusers')}; {m.get('started')}", "",
                 "| method | wall s | generation s (model loaded) | speed-up vs (b) | speed-up vs (a) "
                 "| peak device GiB | peak torch-allocated GiB | note |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- |"]

        def f(v, fmt="{:.2f}"):
            return "-" if v is None else fmt.format(v)

        for r in self.rows():
            lines.append(f"| {r['method']} | {f(r['wall_s'])} | {f(r['gen_s'])} | {f(r['vs_b'], '{:.2f}x')} "
                         f"| {f(r['vs_a'], '{:.2f}x')} | {f(r['peak_device_gib'])} | {f(r['peak_torch_gib'])} "
                         f"| {r['note']} |")
        lines += ["", f"Peak device memory: {m.get('memory_method', '-')}.", ""]
        if self.results["comparisons"]:
            lines += ["| first frame | PSNR dB | max abs diff |", "| --- | --- | --- |"]
            for k, v in self.results["comparisons"].items():
                lines.append(f"| {k} | {f(v.get('psnr_db'))} | {f(v.get('max_abs_diff'), '{:.0f}')} |")
            lines.append("")
        lv = self.results["stages"].get("levers", {})
        measured = [k for k in lv if k.startswith(("unet_call_ms", "vae_decode_s", "vae_aoti", "vae_channels"))]
        if measured:
            lines += [f"Levers, timed in this process on diffusers' modules in {m.get('dtype')} (median after a "
                      f"warm-up; UNet batch {lv.get('unet_batch')}, VAE decode of the walk in "
                      f"{lv.get('decode_chunk')} frames a call unless named; `levers` in results.json):", "",
                      "| lever | value |", "| --- | --- |"]
            lines += [f"| {k} | {lv[k]} |" for k in measured]
            lines.append("")
        if self.results.get("checks"):
            lines += ["| criterion (issues 7 and 13) | value | pass |", "| --- | --- | --- |"]
            for c in self.results["checks"]:
                lines.append(f"| {c['criterion']} | {c['value']} | {c['pass']} |")
            lines.append("")
        if self.results["notes"]:
            lines += ["Notes:", ""] + [f"- {n}" for n in self.results["notes"]] + [""]
        return "\n".join(lines)

    def print_table(self) -> None:
        print("\n" + "=" * 100)
        print(f"{'method':<48} {'wall s':>8} {'gen s':>8} {'vs (b)':>8} {'vs (a)':>8} {'peak GiB':>9} {'torch GiB':>9}")

        def f(v, fmt="{:.2f}"):
            return "-" if v is None else fmt.format(v)

        for r in self.rows():
            print(f"{r['method'][:48]:<48} {f(r['wall_s']):>8} {f(r['gen_s']):>8} {f(r['vs_b'], '{:.2f}x'):>8} "
                  f"{f(r['vs_a'], '{:.2f}x'):>8} {f(r['peak_device_gib']):>9} {f(r['peak_torch_gib']):>9}")
        for k, v in self.results["comparisons"].items():
            print(f"first frame {k}: PSNR {f(v.get('psnr_db'))} dB, max |diff| {f(v.get('max_abs_diff'), '{:.0f}')}")
        for c in self.results.get("checks", []):
            print(f"check: {c['criterion']}: {c['value']} -> {c['pass']}")
        print("=" * 100, flush=True)

    # ---- stages

    def run(self) -> int:
        a = self.a
        started = time.time()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import numpy as np  # noqa: F401
        import torch

        self.torch = torch
        cuda = a.cuda
        if cuda and not torch.cuda.is_available():
            log("error: --device cuda but torch sees no CUDA device (use --device cpu for a smoke run)")
            return 2
        self.dev_index = torch.device(a.device).index or 0 if cuda else 0
        self.sampler = MemorySampler(self.dev_index) if cuda else None
        # Device memory in use before this process touches CUDA: the zero for diffusers' peaks.
        self.idle_used = self.sampler.used() if self.sampler else None
        import diffusers
        import transformers

        diffusers.utils.logging.set_verbosity_error()
        transformers.utils.logging.set_verbosity_error()
        meta = {
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "device": a.device, "dtype": a.dtype, "model": "tiny SD-1.x" if a.smoke else "SD-1.5 (860M UNet)",
            "frames": a.frames, "steps": a.steps, "size": a.size, "guidance": a.guidance, "seed": a.seed,
            "prompt": a.prompt, "negative": a.negative, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "python": sys.version.split()[0],
            "memory_method": (f"{self.sampler.kind} sampled every 20 ms, minus the device's use before the run"
                              if self.sampler and self.sampler.kind else "not measured (no GPU)"),
            "idle_device_used_gib": None if self.idle_used is None else self.idle_used / GIB,
            "cpu_count": os.cpu_count(),
        }
        if cuda:
            p = torch.cuda.get_device_properties(torch.device(a.device))
            meta.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / GIB, 1),
                        cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
        self.results["meta"] = meta
        self.write()
        log(f"{meta.get('gpu', 'CPU')}: {a.frames} frames x {a.steps} steps at {a.size}x{a.size}, dtype {a.dtype}; "
            f"out {self.out}")

        tmp = None
        if self.work is None:
            import tempfile

            tmp = Path(tempfile.mkdtemp(prefix="sdinterp-gpu-compare-"))
            self.work = tmp
        self.work.mkdir(parents=True, exist_ok=True)
        try:
            self._run_stages()
        except Exception as e:  # keep what was measured
            import traceback

            traceback.print_exc()
            self.note(f"stopped by {type(e).__name__}: {e}")
        finally:
            self.results["meta"]["total_s"] = round(time.time() - started, 1)
            self._checks()
            self.write()
            self.print_table()
            self._save_frames()
            self._scrub_paths()
            if not a.keep_workdir and self.work is not None:
                shutil.rmtree(self.work / "model", ignore_errors=True)
                shutil.rmtree(self.work / "bundle", ignore_errors=True)
                for extra in self.work.glob("bundle-*"):
                    shutil.rmtree(extra, ignore_errors=True)
                shutil.rmtree(self.work / "runs", ignore_errors=True)
                if tmp is not None:
                    shutil.rmtree(tmp, ignore_errors=True)
        return 0

    def _scrub_paths(self) -> None:
        """The results and logs name this machine's folders only as WORK (the scratch folder), REPO
        (the checkout) and OUT, so that a run's results can be committed (no machine paths in the
        repository)."""
        names = [(str(self.work), "WORK"), (str(REPO), "REPO"), (str(self.out), "OUT")]
        names = sorted({(p, n) for p, n in names if p and p != "."}, key=lambda pn: -len(pn[0]))
        for f in self.out.iterdir():
            if not f.is_file() or f.suffix not in (".json", ".md", ".log", ".txt"):
                continue
            text = f.read_text(errors="replace")
            scrubbed = text
            for path, name in names:
                scrubbed = scrubbed.replace(path, name)
            if scrubbed != text and f.name != "run.log":  # run.log is still being written by the caller's tee
                f.write_text(scrubbed)

    def _run_stages(self) -> None:
        a, torch = self.a, self.torch
        dtype = getattr(torch, a.dtype)
        cfg = TINY if a.smoke else SD15

        t0 = time.perf_counter()
        pipe = make_pipeline(cfg, a.device, a.model_seed, not a.no_rescale)
        sync(a.device)
        n_unet = sum(p.numel() for p in pipe.unet.parameters())
        self.stage("setup", build_model_s=round(time.perf_counter() - t0, 2), unet_parameters_m=round(n_unet / 1e6, 1))
        log(f"built the random-weight pipeline ({n_unet / 1e6:.1f}M UNet parameters) in "
            f"{time.perf_counter() - t0:.1f} s")
        latent_hw = (a.size // 8, a.size // 8)
        latents = walk_latents(a.seed, a.frames, latent_hw)
        self._attention_choice(pipe, latent_hw)

        # The model in the bundle's dtype, saved in diffusers layout: (b) and (c) run the same weights,
        # (a) their float32 copy.
        bundle = self.work / "bundle"
        folder = self.work / "model"
        export_ok = False
        if not a.skip_sdinterp:
            t0 = time.perf_counter()
            pipe.to(dtype=dtype)
            shutil.rmtree(folder, ignore_errors=True)
            pipe.save_pretrained(folder)
            self.stage("setup", save_pretrained_s=round(time.perf_counter() - t0, 2))
            export_ok = self._export(folder, bundle)
            pipe.to(dtype=torch.float32)
            gc.collect()
            if a.cuda:
                torch.cuda.empty_cache()
        # Untimed work overlaps: the AOTInductor compile of the UNet (d) runs in the background from
        # here, beside the sdinterp build and the golden check; nothing is timed until both are over.
        compile_job = vae_job = also_job = None
        also_bundle = self.work / f"bundle-{a.aoti_also}" if a.aoti_also else None
        if not a.skip_sdinterp and not a.skip_aoti and export_ok:
            if also_bundle is not None:
                link_copy(bundle, also_bundle)  # before --add-aoti replaces model.json in `bundle`
            compile_job = self._start_aoti(folder, bundle, reuse=a.aoti_reuse)
            if also_bundle is not None:
                also_tuning, also_static = also_settings(a, a.aoti_also)
                also_job = self._start_aoti(folder, also_bundle, also_tuning, None, f"aoti-{a.aoti_also}.log",
                                            also_static, second=True)
        # The VAE decoder's compile (the levers, and row (d) compiled-decode) beside the UNet's: the
        # H100 run started it after the golden export and stopped it, unfinished, 65 s later. It is
        # waited for (or stopped) after the UNet's, so it takes time only from what is left over.
        if not a.skip_levers and export_ok:
            vae_job = self._start_vae_compile(folder)
        golden_bundle = self._golden_export() if not a.skip_golden else None
        self._wait_build()
        if golden_bundle is not None and not a.skip_sdinterp:
            self._golden_run(golden_bundle)
        if not a.skip_smoke_command and not a.skip_sdinterp:
            self._smoke_command()
        aoti_ok = self._finish_aoti(compile_job, "aoti_compile", self._compile_reserve()) if compile_job else False
        also_ok = self._finish_aoti(also_job, f"aoti_compile_{a.aoti_also}", self._compile_reserve(second=True)) \
            if also_job else False
        vae_package, vae_record = self._finish_vae_compile(vae_job) if vae_job else (None, None)
        self._wait_also()

        if not a.skip_diffusers_batch:
            pipe.to(dtype=dtype)
            self._diffusers_batch(pipe, latents, dtype, "b", f"(b) diffusers {a.dtype}, all frames in one call",
                                  slicing=False)
            if not a.skip_vae_slicing and (a.cuda or a.smoke):  # smoke: the code path, on the CPU too
                self._diffusers_batch(pipe, latents, dtype, "b2",
                                      f"(b2) diffusers {a.dtype}, one call, VAE slicing", slicing=True)
        if not a.skip_sdinterp and export_ok:
            pipe.to("cpu")  # frees the device for sdinterp, which sizes its batch from free memory
            gc.collect()
            if a.cuda:
                torch.cuda.empty_cache()
            self._sdinterp_warmup(bundle)
            vae_bundle = None
            if aoti_ok and vae_package is not None:
                vae_bundle = self.work / "bundle-vae"
                bundle_with_decoder(bundle, vae_package, vae_record, vae_bundle)
            for row_bundle, name, flags, optional in self._row_plan(bundle, aoti_ok, also_bundle if also_ok else None,
                                                                     vae_bundle):
                self._sdinterp(row_bundle, name, flags, optional=optional)
            if not a.skip_diffusers_e2e:
                self._diffusers_e2e(folder)
            pipe.to(a.device)
        if not a.skip_levers:
            self._levers(pipe, vae_package)
        if not a.skip_notebook_loop:
            pipe.to(dtype=torch.float32)
            self._notebook_loop(pipe, latents)
        del pipe
        gc.collect()
        if a.cuda:
            torch.cuda.empty_cache()

    def _attention_choice(self, pipe, latent_hw: tuple[int, int]) -> None:
        """Stage attention_choice (untimed, well under a second): the attention kernel LibTorch picks
        for each of the job's attention calls in the run's dtype (the UNet's at its guided batch, the
        VAE decoder's with all frames), in its own order and with each kernel tried first. On a GPU,
        a kernel that takes no UNet call even tried first is said in a note, and what would only
        measure it is passed over: the --aoti-also setting that puts it first (when chosen by the
        run: the next candidate is compiled instead) and the TorchScript rows with it first."""
        a = self.a
        try:
            calls = attention_calls(pipe, latent_hw)
            batches = {"unet": unet_batch(a), "vae_decoder": a.frames}
            chosen = attention_choice(calls, batches, a.device, getattr(self.torch, a.dtype))
        except Exception as e:  # noqa: BLE001 - a finding, not a reason to stop the run
            self.stage("attention_choice", error=f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
            return
        self.stage("attention_choice", calls=chosen)
        for module in ("unet", "vae_decoder"):
            mine = [c for c in chosen if c["module"] == module]
            picks = {order: sorted({c[order] for c in mine}) for order in ["default", *ATTENTION_FIRST]}
            log(f"attention kernels for the {module}'s {sum(c['calls'] for c in mine)} calls: "
                + "; ".join(f"{order if order == 'default' else kernel_name(order) + ' first'}: {', '.join(p)}"
                            for order, p in picks.items()))
        unet = [c for c in chosen if c["module"] == "unet"]
        if not (a.cuda and unet):
            return
        unfit = {kernel_name(b) for b in ATTENTION_FIRST if all(c[b] != b for c in unet)}
        for kernel in sorted(unfit):
            self.note(f"no UNet attention call takes {kernel} attention here, even tried first (attention_choice)")
        passed_over = [t for t in a.also_candidates if attention_kernel_named(also_settings(a, t)[0]) in unfit]
        if a.aoti_also in passed_over:
            rest = [t for t in a.also_candidates if t not in passed_over]
            self.note(f"--aoti-also {a.aoti_also} passed over (its attention kernel takes no UNet call): "
                      + (f"compiling {rest[0]} instead" if rest else "no second setting"))
            a.aoti_also = rest[0] if rest else None
        kept = [r for r in a.sdinterp_run if split_env(r.partition("=")[2].split())[1].get(SDPA_FIRST_ENV) not in unfit]
        if kept != a.sdinterp_run:
            self.note("rows left out (their attention kernel takes no UNet call): "
                      + ", ".join(r.partition("=")[0] for r in a.sdinterp_run if r not in kept))
            a.sdinterp_run = kept

    def _exporter_command(self, folder: Path, bundle: Path, flag: str, dtype: str | None = None) -> list[str]:
        """scripts/export_bundle.py FOLDER BUNDLE for this run's device (and dtype, unless given), plus `flag`."""
        a = self.a
        return [sys.executable, str(EXPORTER), str(folder), str(bundle), "--device", "cuda" if a.cuda else "cpu",
                "--dtype", dtype or a.dtype, "--offline", flag]

    def _run_exporter(self, cmd: list[str], log_name: str, what: str, timeout: float | None,
                      append: bool = False) -> tuple[int | str, float, str]:
        """Runs an exporter command, its output in (or, with append, added to) OUT/log_name. Returns
        (exit status or "timeout", seconds, the command as shown)."""
        log(f"{what}: {' '.join(cmd[1:])} (log: {log_name}; time limit "
            f"{'none' if timeout is None else f'{timeout:.0f} s'})")
        t0 = time.perf_counter()
        with open(self.out / log_name, "a" if append else "w") as logf:
            if append:
                logf.write(f"\n$ {shlex.join(cmd)}\n")
                logf.flush()
            try:
                rc = subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT, timeout=timeout,
                                    env={**os.environ, "HF_HUB_OFFLINE": "1"}).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        return rc, time.perf_counter() - t0, " ".join(["scripts/export_bundle.py", *cmd[3:]])

    def _export(self, folder: Path, bundle: Path) -> bool:
        timeout = max(30.0, self.clock.left() - 60.0) if self.clock.deadline else None
        rc, dt, shown = self._run_exporter(self._exporter_command(folder, bundle, "--overwrite"), "export.log",
                                           "exporting", timeout)
        size = sum(f.stat().st_size for f in [*bundle.glob("*.pt"), *bundle.glob("*.safetensors")]) \
            if bundle.is_dir() else 0
        self.stage("export", command=shown, rc=rc, seconds=round(dt, 1), bundle_gib=round(size / GIB, 2))
        log(f"export exited {rc} after {dt:.1f} s; bundle {size / GIB:.2f} GiB")
        if rc != 0:
            self.note(f"export failed ({rc}): see export.log; sdinterp not measured")
        return rc == 0

    def _start_aoti(self, folder: Path, bundle: Path, tuning: str | None = None, reuse: str | None = None,
                    log_name: str = "aoti.log", static: str | None = None, second: bool = False) -> dict:
        """Starts export_bundle.py --add-aoti on `bundle` in the background (its own process group,
        output in OUT/LOG_NAME), with settings `tuning` (default: --aoti-tuning), for one call shape
        `static` (--aoti-static) or every one, and a package to reuse instead of compiling. Its time is
        reported, not timed against anything: a one-time cost per model, dtype and GPU. `second`: the
        --aoti-also compile, at a lower priority than row (d)'s, as the VAE decoder's."""
        tuning = tuning or self.a.aoti_tuning
        cmd = [*self._exporter_command(folder, bundle, "--add-aoti"), "--aoti-tuning", tuning]
        if static:
            cmd += ["--aoti-static", static]
        if reuse:
            cmd += ["--aoti-reuse", str(Path(reuse).absolute())]
        # The reused package by name: it lies outside the folders _scrub_paths names.
        shown = " ".join(["scripts/export_bundle.py", *(Path(c).name if reuse and c == cmd[-1] else c for c in cmd[3:])])
        log(f"compiling the UNet ({tuning}) in the background: {shown} (log: {log_name})")
        logf = open(self.out / log_name, "w")
        proc = subprocess.Popen([*LOWER_PRIORITY, *cmd] if second else cmd, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        return {"proc": proc, "log": logf, "t0": time.perf_counter(), "shown": shown, "folder": folder,
                "bundle": bundle, "tuning": tuning, "reuse": reuse, "log_name": log_name, "static": static}

    def _row_plan(self, bundle: Path, aoti_ok: bool, also_bundle: Path | None,
                  vae_bundle: Path | None) -> list[tuple[Path, str, list[str], bool]]:
        """The sdinterp rows in the order they run, as (bundle, name, flags, optional): the essential
        rows first ((c) and (c) warm on the TorchScript UNet, then (d) and (d) warm on the compiled
        one: the bundle has both, so each names its engine), then the optional ones, which skip
        themselves when (e) and (a) would lose their time, the candidates for the speed targets
        first: the second compile's package warm (its first job is the same as (d)'s), both packages
        warm (beside row (d) aoti warm, what the compiled decoder saves), then the other
        --sdinterp-run and --aoti-run rows in their order."""
        a = self.a
        essential, optional = [], []
        for runs, engine, count, bundle_ok in ((a.sdinterp_run, "torchscript", self.ESSENTIAL_SDINTERP_ROWS, True),
                                               (a.aoti_run, "aoti", self.ESSENTIAL_AOTI_ROWS, aoti_ok)):
            if not bundle_ok:
                continue
            for i, spec in enumerate(runs):
                name, _, flags = spec.partition("=")
                (essential if i < count else optional).append(
                    (bundle, name.strip(), ["--unet-engine", engine, *flags.split()], i >= count))
        first = []
        if also_bundle is not None:
            first.append((also_bundle, f"aoti {a.aoti_also} warm", ["--unet-engine", "aoti"], True))
        if vae_bundle is not None:
            first.append((vae_bundle, "aoti warm compiled-decode", ["--unet-engine", "aoti"], True))
        return essential + first + optional

    # Seconds an sdinterp row takes, whole command or warm (from the H100 run: 7-10 s).
    ROW_S = 12.0
    # Rows of --sdinterp-run and --aoti-run past these many are optional: run only while (e) and (a)
    # keep their time.
    ESSENTIAL_SDINTERP_ROWS = 2
    ESSENTIAL_AOTI_ROWS = 2
    # Seconds left that (e) and (a) each need to start.
    E2E_START_S = 60.0
    NOTEBOOK_START_S = 45.0

    def _timed_stages_need(self, essential: bool = False) -> float:
        """Seconds the timed stages need after the compile: (b) and (b2), the sdinterp warm-up, each
        sdinterp run, (e), the levers' share, and (a) (which is extrapolated from the frames it
        finishes when short). From the H100 run of 2026-12-06: (b) and (b2) 8 s each with their
        warm-ups, a whole-command row 7-8 s, a warm row 10 s, (e) 29 s, (a) 23 s.
        `essential`: only what the issue's targets need, the rows (c), (d) and (d) warm, then (e) and
        (a) (_tail_need); the compile of row (d)'s UNet is stopped only at that, since the optional
        rows and the levers skip themselves when time runs short."""
        a = self.a
        if essential:
            runs = min(self.ESSENTIAL_SDINTERP_ROWS, len(a.sdinterp_run)) + min(self.ESSENTIAL_AOTI_ROWS,
                                                                                  len(a.aoti_run))
            return 20.0 + 5.0 + self.ROW_S * runs + self._tail_need()
        runs = len(a.sdinterp_run) + len(a.aoti_run) + (1 if a.aoti_also else 0) + self._decoder_rows()
        return (20.0 + 5.0 + self.ROW_S * runs + (0.0 if a.skip_diffusers_e2e else 30.0)
                + (0.0 if a.skip_notebook_loop else 25.0) + (0.0 if a.skip_levers else 20.0))

    def _decoder_rows(self) -> int:
        """Rows on the compiled VAE decoder's package (row (d) compiled-decode), when its compile runs."""
        a = self.a
        return 0 if a.skip_levers or a.skip_aoti else 1

    def _compile_reserve(self, second: bool = False) -> float:
        """Seconds left at which a background compile is stopped: row (d)'s UNet compile when only the
        essential stages still fit; the others (the second UNet setting, --aoti-also, and the VAE
        decoder) when they and the first optional rows, on those packages, do."""
        return self._timed_stages_need(essential=True) + (self.ROW_S * (1 + self._decoder_rows()) if second else 0.0)

    def _tail_need(self) -> float:
        """Seconds left that let (e) and then (a) run after the sdinterp rows: (e) starts with
        E2E_START_S left and takes about 30; (a) starts with NOTEBOOK_START_S left."""
        a = self.a
        e = 0.0 if a.skip_diffusers_e2e else 30.0
        notebook = 0.0 if a.skip_notebook_loop else self.NOTEBOOK_START_S
        return max(self.E2E_START_S if e else 0.0, e + notebook)

    def _finish_aoti(self, job: dict, stage: str, reserve: float) -> bool:
        """Waits for a background compile, but stops it (its rows then say so) when less than `reserve`
        seconds are left (_compile_reserve). A reused package that cannot be used here is compiled
        instead, if the run still has the time."""
        bundle, tuning = job["bundle"], job["tuning"]
        rc, dt, timed_out = self._wait_background(job, f"the UNet compile ({tuning})", reserve)
        fields = dict(command=job["shown"], rc=rc, seconds=round(dt, 1), tuning=tuning)
        if rc != 0 and job["reuse"] and not timed_out:
            fields["reuse_failed"] = error_line((self.out / job["log_name"]).read_text(errors="replace"))
            self.note(f"the reused package {Path(job['reuse']).name} was refused ({fields['reuse_failed']}): "
                      "compiling instead")
            self.stage(stage, **fields)
            return self._finish_aoti(self._start_aoti(job["folder"], bundle, tuning, None, job["log_name"],
                                                      job["static"]), stage, reserve)
        if rc == 0:
            compiled = json.loads((bundle / "model.json").read_text())["unet"]["compiled"]
            size = (bundle / "unet.pt2").stat().st_size
            fields.update(compile_seconds=compiled.get("compile_seconds"), reused=compiled.get("reused"),
                          package_mib=round(size / 2**20, 1))
            try:
                fields.update(package_kernels(bundle / "unet.pt2"))
            except (OSError, zipfile.BadZipFile) as e:
                fields["kernels_error"] = str(e)
            wanted = attention_kernel_named(tuning)
            if wanted and "attention_kernels" in fields and wanted not in fields["attention_kernels"]:
                self.note(f"the {tuning} package calls {', '.join(fields['attention_kernels']) or 'no'} attention "
                          f"kernel, not {wanted}'s: LibTorch found {wanted}'s unfit for these calls, so its rows "
                          "measure the other settings only")
            kept = keep_package(bundle / "unet.pt2", {"tuning": tuning, **compiled}, self.out, self.a.dtype, "unet")
            if kept:
                fields["package_kept"] = kept
        self.stage(stage, **fields)
        log(f"--add-aoti ({tuning}): exit {rc} after {dt:.1f} s")
        if rc != 0:
            self.note(f"AOTInductor compile ({tuning}) {'stopped at its time limit' if timed_out else f'failed ({rc})'} "
                      f"after {dt:.0f} s: see {job['log_name']}")
        return rc == 0

    def _wait_background(self, job: dict, what: str, reserve: float) -> tuple[int | str, float, bool]:
        """Waits for a background compile, but stops it when less than `reserve` seconds are left
        (_compile_reserve). Returns (exit status or "timeout", seconds since it started, whether it
        was stopped)."""
        proc = job["proc"]
        if proc.poll() is None:
            log(f"waiting for {what} (stopped with {reserve:.0f} s left for the timed stages)")
        timed_out = False
        while proc.poll() is None:
            if self.clock.deadline and self.clock.left() < reserve:
                timed_out = True
                try:
                    os.killpg(proc.pid, 9)
                except ProcessLookupError:
                    pass
                proc.wait()
                break
            time.sleep(0.5)
        job["log"].close()
        return ("timeout" if timed_out else proc.returncode), time.perf_counter() - job["t0"], timed_out

    # ---- levers: issue 13 items 2 and 3 asked of diffusers' own modules in this process

    def _start_vae_compile(self, folder: Path) -> dict:
        """bench/compile_vae_decoder.py in the background (output in OUT/vae_compile.log), beside the
        UNet's compile: the VAE decoder as sdinterp takes a compiled one (export_bundle.py
        --aoti-vae), timed in _levers and in row (d) compiled-decode. A package an earlier run
        brought back (bench/gpu/cache) is taken instead of compiling, as for the UNet."""
        a = self.a
        package = self.work / "vae_decoder.pt2"
        package.unlink(missing_ok=True)
        cmd = [sys.executable, str(REPO / "bench" / "compile_vae_decoder.py"), str(folder), str(package),
               "--device", a.device, "--dtype", a.dtype, "--tuning", a.aoti_tuning]
        if a.vae_reuse:
            cmd += ["--reuse", a.vae_reuse]
        log(f"compiling the VAE decoder in the background: {' '.join(cmd[2:])} (log: vae_compile.log)")
        logf = open(self.out / "vae_compile.log", "w")
        # At a lower priority than the UNet's compile, which decides whether rows (d) run at all.
        proc = subprocess.Popen([*LOWER_PRIORITY, *cmd], stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        return {"proc": proc, "log": logf, "t0": time.perf_counter(), "package": package}

    def _finish_vae_compile(self, job: dict) -> tuple[Path | None, dict | None]:
        """The package and its model.json record, or (None, None)."""
        rc, dt, timed_out = self._wait_background(job, "the VAE decoder's compile", self._compile_reserve(second=True))
        fields = dict(vae_compile_rc=rc, vae_compile_wall_s=round(dt, 1))
        lines = (self.out / "vae_compile.log").read_text(errors="replace").strip().splitlines()
        record = None
        if rc == 0 and lines:
            try:
                done = json.loads(lines[-1])
                record = done.pop("record", None)
                fields.update({f"vae_{k}": v for k, v in done.items()})
            except json.JSONDecodeError:
                pass
        package = job["package"]
        if record is not None:
            fields["vae_reused"] = record.get("reused")
            kept = keep_package(package, record, self.out, self.a.dtype, "vae_decoder")
            if kept:
                fields["vae_package_kept"] = kept
        self.stage("levers", **fields)
        log(f"VAE decoder compile: exit {rc} after {dt:.1f} s")
        if rc != 0:
            self.note(f"VAE decoder compile {'stopped at its time limit' if timed_out else f'failed ({rc})'}: "
                      "see vae_compile.log")
        return (package, record) if rc == 0 and record is not None else (None, None)

    def _levers(self, pipe, vae_package: Path | None) -> None:
        """Timed in this process on diffusers' modules in the run's dtype, each after a warm-up pass
        (issue 13 items 2 and 3; what sdinterp would build in is decided from these): the UNet's
        levers (_unet_levers), then the VAE decode's (_decode_levers). A lever that fails is
        recorded as its error; the others stand."""
        a, torch = self.a, self.torch
        if self.clock.left() < 90:
            self.stage("levers", note="skipped: out of time")
            return
        dtype = getattr(torch, a.dtype)
        t_start = time.perf_counter()
        pipe.to(device=a.device, dtype=dtype)
        g = torch.Generator().manual_seed(a.seed)
        lh = lw = a.size // 8
        n = unet_batch(a)
        levers = LeverTimes(self.clock, a.device, {"unet_batch": n})
        try:
            with torch.inference_mode():
                x = torch.randn(n, pipe.unet.config.in_channels, lh, lw, generator=g).to(a.device, dtype)
                ctx = torch.randn(n, 77, pipe.text_encoder.config.hidden_size, generator=g).to(a.device, dtype)
                self._unet_levers(pipe, levers, x, ctx, torch.full((n,), 981.0, device=a.device))
                del x, ctx
                chunk = self.results["stages"].get("c", {}).get("decode_chunk") or a.frames
                z = torch.randn(a.frames, pipe.vae.config.latent_channels, lh, lw, generator=g).to(a.device, dtype)
                self._decode_levers(pipe, levers, z, chunk, vae_package)
        except Exception as e:  # measurements for the record: the rows before and (a) after still stand
            levers.fields["note"] = f"stopped by {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        finally:
            torch.backends.cudnn.benchmark = False
            pipe.unet.to(memory_format=torch.contiguous_format)
            pipe.vae.to(memory_format=torch.contiguous_format)
            gc.collect()
            if a.cuda:
                torch.cuda.empty_cache()
        fields = levers.fields
        fields["levers_s"] = round(time.perf_counter() - t_start, 1)
        self.stage("levers", **fields)
        log(f"levers: {fields}")

    def _unet_levers(self, pipe, levers: LeverTimes, x, ctx, t) -> None:
        """One UNet call at the walk's guided batch, in milliseconds: contiguous; with cuDNN's timed
        algorithm choice (cudnn.benchmark, sdinterp's SDINTERP_CUDNN_BENCHMARK); channels_last; with
        each scaled_dot_product_attention backend forced (flash, memory-efficient, cuDNN; CUDA
        only); with the attention projections fused (diffusers' fuse_qkv_projections)."""
        torch = self.torch
        channels_last = torch.channels_last

        def unet(sample=None):
            return pipe.unet(x if sample is None else sample, t, encoder_hidden_states=ctx, return_dict=False)[0]

        levers.time("unet_call_ms_contiguous", unet, 3, 1000)
        with cudnn_benchmark(torch):
            levers.time("unet_call_ms_cudnn_benchmark", unet, 3, 1000)
        try:
            pipe.unet.to(memory_format=channels_last)
            levers.time("unet_call_ms_channels_last", lambda: unet(x.contiguous(memory_format=channels_last)), 3, 1000)
        finally:
            pipe.unet.to(memory_format=torch.contiguous_format)
        if self.a.cuda:
            from torch.nn.attention import SDPBackend, sdpa_kernel

            for backend, key in ((SDPBackend.FLASH_ATTENTION, "flash"),
                                 (SDPBackend.EFFICIENT_ATTENTION, "efficient"),
                                 (SDPBackend.CUDNN_ATTENTION, "cudnn")):
                def forced(b=backend):
                    with sdpa_kernel(b):
                        return unet()
                levers.time(f"unet_call_ms_sdpa_{key}", forced, 3, 1000)
        if hasattr(pipe.unet, "fuse_qkv_projections"):
            try:
                pipe.unet.fuse_qkv_projections()
                levers.time("unet_call_ms_fused_qkv", unet, 3, 1000)
            except Exception as e:  # noqa: BLE001 - fusing failed: a finding too
                levers.fields["unet_call_ms_fused_qkv"] = LeverTimes.failed(e)
            finally:
                if hasattr(pipe.unet, "unfuse_qkv_projections"):
                    pipe.unet.unfuse_qkv_projections()

    def _decode_levers(self, pipe, levers: LeverTimes, z, chunk: int, vae_package: Path | None) -> None:
        """The walk's VAE decode of latents `z`, in seconds: in sdinterp's chunks (its metadata's
        decode_chunk) eager, with cudnn.benchmark, channels_last, and through the compiled decoder
        given the eager weights (each with its largest difference from the eager frames); eager in
        chunks of 5, 10 and all frames at once (the memory plan's speed cost)."""
        a, torch = self.a, self.torch
        channels_last = torch.channels_last
        levers.fields["decode_chunk"] = chunk

        def decode(fn, layout=torch.contiguous_format, size=chunk):
            return torch.cat([fn(c.contiguous(memory_format=layout)) for c in z.split(size)])

        def vae(c):
            return pipe.vae.decode(c, return_dict=False)[0]

        def differs(key: str, out, eager) -> None:
            if out is not None and eager is not None:
                levers.fields[key] = float((out.float() - eager.float()).abs().max())

        eager = levers.time("vae_decode_s_eager", lambda: decode(vae), 2, digits=3)
        with cudnn_benchmark(torch):
            levers.time("vae_decode_s_cudnn_benchmark", lambda: decode(vae), 2, digits=3)
        try:
            pipe.vae.to(memory_format=channels_last)
            out = levers.time("vae_decode_s_channels_last", lambda: decode(vae, channels_last), 2, digits=3)
            differs("vae_channels_last_max_abs_diff", out, eager)
        finally:
            pipe.vae.to(memory_format=torch.contiguous_format)
        for size in sorted({5, 10, a.frames}):
            if size != chunk and size <= a.frames:
                levers.time(f"vae_decode_s_eager_chunk_{size}", lambda size=size: decode(vae, size=size), 2, digits=3)
        if vae_package is not None and self.clock.left() > 60:
            from export_bundle import make_wrappers

            _, _, VaeDecoder, _ = make_wrappers()
            wrapper = VaeDecoder(pipe.vae)
            weights = dict(wrapper.named_parameters())
            weights.update(wrapper.named_buffers())
            package = torch._inductor.aoti_load_package(str(vae_package))
            names = package.get_constant_fqns()
            package.load_constants({k: weights[k] for k in names}, check_full_update=True, user_managed=True)
            differs("vae_aoti_max_abs_diff", levers.time("vae_decode_s_aoti", lambda: decode(package), 2, digits=3),
                    eager)
            del package

    # ---- the GPU runners' smoke command (issue 13 item 5)

    def _smoke_command(self) -> None:
        """scripts/smoke.py --device DEVICE, as README tells a GPU runner to run it after the set-up
        (here with this run's build and carried libraries): it exports tiny-sd for the device and checks
        the four golden cases. Untimed; its exit status and last lines go to the stage smoke_command."""
        a = self.a
        spare = self.clock.left() - self._timed_stages_need()
        if not Path(a.sdinterp).is_file() or spare < 60:
            self.stage("smoke_command", note="skipped: " + ("no binary" if spare >= 60 else "out of time"))
            return
        cmd = [sys.executable, str(REPO / "scripts" / "smoke.py"), "--device", a.device, "--sdinterp", a.sdinterp]
        shown = shlex.join(["scripts/smoke.py", "--device", a.device])
        log(f"the smoke command: {shown}")
        t0 = time.perf_counter()
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, env=self._sdinterp_env(),
                               timeout=min(300.0, spare - 30))
            rc, output = r.returncode, r.stdout + r.stderr
        except subprocess.TimeoutExpired as e:
            partial = e.stdout or ""
            rc, output = "timeout", partial.decode(errors="replace") if isinstance(partial, bytes) else partial
        dt = time.perf_counter() - t0
        with open(self.out / "smoke.log", "w") as f:
            f.write(f"$ {shown}\n# exit {rc}, {dt:.1f} s\n{output}\n")
        lines = [line for line in output.splitlines() if line.startswith("smoke: ")]
        self.stage("smoke_command", command=shown, rc=rc, seconds=round(dt, 1), lines=lines[-6:])
        log(f"the smoke command: exit {rc} after {dt:.1f} s; {lines[-1] if lines else 'no verdict'}")

    # ---- golden check: tiny-sd re-exported for this device in float32, the notebook's four examples

    def _golden_export(self) -> Path | None:
        """tiny-sd rebuilt as a diffusers pipeline (tests/python/tiny_sd.py), exported for this device
        in float32, and (on CUDA, unless --skip-aoti) given a compiled UNet too."""
        import tiny_sd

        a = self.a
        t0 = time.perf_counter()
        folder, bundle = self.work / "tiny-model", self.work / "tiny-bundle"
        shutil.rmtree(folder, ignore_errors=True)
        try:
            tiny_sd.rebuild_pipeline().save_pretrained(folder)
        except Exception as e:  # reported, and the rest of the run goes on
            self.stage("golden", note=f"tiny-sd not rebuilt: {type(e).__name__}: {e}")
            self.note("golden check skipped: tiny-sd could not be rebuilt")
            return None
        rc, dt, shown = self._run_exporter(self._exporter_command(folder, bundle, "--overwrite", "float32"),
                                           "export.log", "exporting tiny-sd (float32) for the golden check",
                                           120.0, append=True)
        fields = dict(export=shown, export_rc=rc, export_s=round(dt, 1))
        if rc == 0 and a.cuda and not a.skip_aoti:
            rc2, dt2, shown2 = self._run_exporter(self._exporter_command(folder, bundle, "--add-aoti", "float32"),
                                                  "export.log", "compiling tiny-sd's UNet", 180.0, append=True)
            fields.update(aoti=shown2, aoti_rc=rc2, aoti_s=round(dt2, 1))
        self.stage("golden", prepare_s=round(time.perf_counter() - t0, 1), **fields)
        if rc != 0:
            self.note(f"golden check skipped: the tiny-sd export failed ({rc}), see export.log")
            return None
        return bundle

    def _golden_run(self, bundle: Path) -> None:
        """The four golden cases through sdinterp on this device, with each UNet engine the bundle has;
        every frame held to the golden tolerance against diffusers' CPU float32 frames."""
        from golden_cases import CASES, case_args, sampling_args

        a = self.a
        if not Path(a.sdinterp).is_file() or self.clock.left() < 60:
            self.stage("golden", note="skipped: no sdinterp binary or out of time")
            return
        manifest = json.loads((bundle / "model.json").read_text())
        engines = ["torchscript"] + (["aoti"] if manifest["unet"].get("compiled") else [])
        # Each engine at sdinterp's own batch, and TorchScript once more one frame a call, as the
        # parity check's diffusers renders them (GPU libraries may round differently by batch size).
        runs = [(engine, engine, []) for engine in engines] + [(PER_FRAME_RUN, "torchscript", ["--batch", "1"])]
        results, ok = [], True
        t0 = time.perf_counter()
        for label, engine, extra in runs:
            for case in CASES:
                out = self.work / "runs" / f"golden-{label}-{case['name']}"
                out.parent.mkdir(parents=True, exist_ok=True)
                cmd = [a.sdinterp, "generate", "--bundle", str(bundle), "--device", a.device, "--unet-engine",
                       engine, "--png-dir", str(out), "--overwrite", "--progress", "none", "-q",
                       *case_args(case), *sampling_args(case), *extra]
                entry = self._golden_case(cmd, label, case, out)
                if entry.pop("crashed", False):  # the crash issue 13 is about
                    self._crash_triage(cmd, self._sdinterp_env(), f"golden {engine} {case['name']}")
                    if self.workaround and engine == "aoti":  # a way around it: the case again, that way
                        first = entry
                        entry = self._golden_case(cmd, label, case, out)
                        entry.pop("crashed", None)
                        entry.update(workaround=self.workaround["name"], without_workaround=first)
                ok = ok and entry["ok"]
                results.append(entry)
        self.stage("golden", cases=results, ok=ok, run_s=round(time.perf_counter() - t0, 1))
        log(f"golden check on {a.device} (tiny-sd float32, {len(results)} runs): {'pass' if ok else 'FAIL'}")
        self._golden_diffusers_on_device(bundle)

    def _golden_case(self, cmd: list[str], engine: str, case: dict, out: Path) -> dict:
        """One golden case through sdinterp (cmd writes PNG frames to out), judged against the golden
        frames. "crashed" in the result says whether the run died of a crash."""
        import numpy as np
        from PIL import Image
        from golden_cases import frame_agreement, golden_frames

        env = self._sdinterp_env(compiled=engine == "aoti")
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        with open(self.out / "sdinterp.log", "a") as f:
            f.write(f"$ {shlex.join(cmd)}\n# exit {r.returncode} (golden)\n# stderr:\n{r.stderr}\n")
        entry = {"engine": engine, "case": case["name"], "rc": r.returncode}
        if r.returncode == 0:
            golden = golden_frames(case)
            frames = sorted(out.glob("frame_*.png"))
            per_frame = [frame_agreement(np.asarray(Image.open(f).convert("RGB")), golden[i])
                         for i, f in enumerate(frames[:len(golden)])]
            entry.update(frames=len(frames), expected=len(golden),
                         max_diff=max((p.get("max_diff", 99) for p in per_frame), default=None),
                         min_equal=round(min((p.get("equal", 0.0) for p in per_frame), default=0.0), 5),
                         ok=len(frames) == len(golden) and all(p["ok"] for p in per_frame))
            meta = json.loads(Path(str(out) + ".json").read_text())["sdinterp"]
            entry["unet_calls"] = meta.get("unet_calls")
        else:
            entry.update(ok=False, error=error_line(r.stderr), crashed=crashed(r.returncode, r.stderr))
        return entry

    def _golden_diffusers_on_device(self, bundle: Path) -> None:
        """Issue 13's parity criterion: diffusers itself on this device (tiny-sd in float32, TF32 off, as
        sdinterp runs float32; with the attention the bundle was exported with, diffusers' own default
        unless --compat) renders the four golden walks (golden_cases.diffusers_case_frames); per case and
        UNet engine, sdinterp's frames must differ from those in no more 8-bit values than diffusers
        here differs from its CPU golden frames, and by at most 1 anywhere."""
        import numpy as np
        from PIL import Image
        from golden_cases import CASES, diffusers_case_frames, golden_frames, to_8bit

        torch, a = self.torch, self.a
        if self.clock.left() < 60:
            self.stage("golden", parity="skipped: out of time")
            return
        tf32 = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        t0 = time.perf_counter()
        try:
            import tiny_sd
            from export_bundle import set_attention

            pipe = tiny_sd.rebuild_pipeline().to(a.device)
            pipe.set_progress_bar_config(disable=True)
            attention = json.loads((bundle / "model.json").read_text()).get("attention")
            set_attention(pipe, compat=attention == "classic")
            rows = []
            for case in CASES:
                theirs = to_8bit(diffusers_case_frames(pipe, case, a.device))
                gap = np.abs(theirs - to_8bit(golden_frames(case)))
                batched = {(1, 1): theirs}  # diffusers' frames by (frames a call, decoded at a time)
                for run in self.results["stages"]["golden"].get("cases", []):
                    if run["case"] != case["name"] or run.get("rc") != 0:
                        continue
                    out = self.work / "runs" / f"golden-{run['engine']}-{case['name']}"
                    ours = np.stack([np.asarray(Image.open(f).convert("RGB"))
                                     for f in sorted(out.glob("frame_*.png"))]).astype(np.int16)
                    if ours.shape != theirs.shape:
                        rows.append({"engine": run["engine"], "case": case["name"], "ok": False,
                                     "ours_unequal": 1.0, "diffusers_unequal": float((gap > 0).mean()),
                                     "ours_max_diff": 255, "problem": f"shape {ours.shape} != {theirs.shape}"})
                        continue
                    diff = np.abs(ours - theirs)
                    row = {"engine": run["engine"], "case": case["name"],
                           "ours_unequal": round(float((diff > 0).mean()), 6), "ours_max_diff": int(diff.max()),
                           "diffusers_unequal": round(float((gap > 0).mean()), 6),
                           "diffusers_max_diff": int(gap.max())}
                    row["ok"] = row["ours_max_diff"] <= 1 and row["ours_unequal"] <= row["diffusers_unequal"]
                    # Beside the criterion: diffusers rendering and decoding as many frames at a time as
                    # this run did (its metadata), which leaves out what the batch sizes change in the
                    # device's kernels (on the CPU sdinterp then equals diffusers bit for bit).
                    meta = json.loads(Path(f"{out}.json").read_text())
                    key = (int(meta["batch"]), int(meta["sdinterp"]["decode_chunk"]))
                    if key not in batched:
                        batched[key] = to_8bit(diffusers_case_frames(pipe, case, a.device, *key))
                    if batched[key].shape == ours.shape:
                        row.update(batching=list(key),
                                   same_batching_unequal=round(float((ours != batched[key]).mean()), 6))
                    rows.append(row)
            self.stage("golden", parity=rows, parity_s=round(time.perf_counter() - t0, 1))
            log(f"float32 parity on {a.device} (sdinterp vs diffusers here, diffusers here vs golden): {rows}")
        except Exception as e:  # a measurement for the record, not a stage the rest depends on
            self.stage("golden", parity=f"failed: {type(e).__name__}: {e}")
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
            gc.collect()
            if a.cuda:
                torch.cuda.empty_cache()

    def _wait_build(self) -> None:
        a = self.a
        if not a.wait_build:
            return
        status = Path(a.wait_build)
        waited = self._wait_for_file(status, "the sdinterp build")
        if waited is None:
            self.note("the sdinterp build had not finished with 60 s left: timings below may be disturbed "
                      "by it, and sdinterp is skipped")
            self.a.skip_sdinterp = True
            return
        rc = status.read_text().strip()
        self.stage("setup", build_wait_s=waited, build_rc=rc)
        log(f"build finished (exit status {rc}; waited {waited:.0f} s)")
        if rc != "0":
            self.note(f"the sdinterp build failed (exit status {rc}): see build.log; sdinterp not measured")
            self.a.skip_sdinterp = True

    def _wait_also(self) -> None:
        """Untimed work started beside this script (the probe) ends before anything is timed."""
        for name in self.a.wait_also:
            status = Path(name)
            waited = self._wait_for_file(status, "untimed work before the timed stages")
            if waited is None:
                self.note(f"{status.name} did not appear with 60 s left: timings below may be disturbed")
            else:
                self.stage("setup", **{f"waited_for_{status.stem}_s": waited})

    def _wait_for_file(self, path: Path, what: str) -> float | None:
        """Seconds waited until `path` exists, or None when only 60 s of the budget were left first."""
        t0 = time.perf_counter()
        if not path.exists():
            log(f"waiting for {what} ({path})")
        while not path.exists():
            if self.clock.left() < 60:
                return None
            time.sleep(1)
        return round(time.perf_counter() - t0, 1)

    def _crash_triage(self, cmd: list[str], env: dict, what: str) -> None:
        """A run that crashed (died of a signal, or sdinterp's crash handler said so), looked at again
        (issue 13, item 1). The leading suspect is two copies of std::filesystem (libstdc++'s, first in
        sdinterp's global symbol scope, and the one that libtorch.so and libtorch_cpu.so carry and
        export) meeting in the package's loader. So the same command runs with each of those libraries
        preloaded (their copy first for everyone) and with sdinterp's modules opened RTLD_GLOBAL
        (triage_variants); the first of these that runs cleanly becomes the workaround
        the rest of the run's compiled-UNet runs use. Then once under LD_DEBUG=bindings to record where
        each library's std::filesystem references bound, and under cuda-gdb (where the machine has it)
        for a backtrace. Results: golden.crash_triage, and the whole outputs in triage.log."""
        if self.results["stages"].get("golden", {}).get("crash_triage") or self.clock.left() < 60:
            return
        torch_lib = Path(self.torch.__file__).parent / "lib"
        shown = shlex.join(cmd)
        report: dict = {"what": what, "variants": []}
        log_path = self.out / "triage.log"
        with open(log_path, "a") as f:
            f.write(f"# crash triage: {what}\n$ {shown}\n")
        for name, extra in triage_variants(torch_lib):
            try:
                r = subprocess.run(cmd, env={**env, **extra}, capture_output=True, text=True, timeout=120)
                rc, err = r.returncode, r.stderr
            except subprocess.TimeoutExpired:
                rc, err = "timeout", ""
            report["variants"].append({"variant": name, "rc": rc, "crashed": crashed(rc, err),
                                       "last_line": error_line(err)})
            with open(log_path, "a") as f:
                f.write(f"## {name}: exit {rc}\n{err}\n")
            if rc == 0 and self.workaround is None:
                # The first way that runs cleanly is used for the rest of the compiled UNet's runs, so
                # that this run still measures it (rows (d) and the golden check say so).
                self.workaround = {"name": name, "env": extra}
                report["workaround"] = name
                self.note(f"sdinterp's crash ({what}) does not happen with {name}: the compiled UNet's "
                          "runs below use it")
        ld_dir = self.work / "ld-bindings"
        shutil.rmtree(ld_dir, ignore_errors=True)
        ld_dir.mkdir(parents=True)
        try:
            subprocess.run(cmd, env={**env, "LD_DEBUG": "bindings", "LD_DEBUG_OUTPUT": str(ld_dir / "ld")},
                           capture_output=True, timeout=120)
        except subprocess.TimeoutExpired:
            pass
        report["filesystem_bindings"] = filesystem_bindings(ld_dir)
        with open(log_path, "a") as f:
            f.write("## std::filesystem bindings (from -> to: count)\n"
                    + "".join(f"{k}: {v}\n" for k, v in report["filesystem_bindings"].items()))
        gdb = shutil.which("cuda-gdb") or shutil.which("gdb")
        # The debugger only with time to spare beyond the timed stages (a CUDA program runs slowly
        # under cuda-gdb).
        spare = self.clock.left() - self._timed_stages_need() - 30
        if gdb and spare >= 30:
            try:
                r = subprocess.run([gdb, "-q", "-batch", "-ex", "set pagination off", "-ex", "run", "-ex", "bt",
                                    "-ex", "info sharedlibrary", "--args", *cmd],
                                   env=env, capture_output=True, text=True, timeout=min(120.0, spare))
                out = r.stdout + r.stderr
            except subprocess.TimeoutExpired as e:
                out = f"timed out: {e}"
            report["backtrace"] = [line for line in out.splitlines() if line.startswith("#")][:25]
            with open(log_path, "a") as f:
                f.write(f"## {Path(gdb).name}\n{out}\n")
        self.stage("golden", crash_triage=report)
        log(f"crash triage ({what}): {report['variants']}; std::filesystem bindings: "
            f"{report['filesystem_bindings']}; backtrace: {report.get('backtrace', 'no debugger')[:6]}")

    def _peaks_start(self) -> None:
        torch = self.torch
        if self.a.cuda:
            sync(self.a.device)
            torch.cuda.reset_peak_memory_stats(torch.device(self.a.device))
        if self.sampler and self.sampler.kind:
            self.sampler.start()

    def _peaks_stop(self) -> dict:
        torch = self.torch
        out = {}
        if self.a.cuda:
            out["peak_torch_allocated_gib"] = round(torch.cuda.max_memory_allocated(torch.device(self.a.device)) / GIB, 2)
            out["peak_torch_reserved_gib"] = round(torch.cuda.max_memory_reserved(torch.device(self.a.device)) / GIB, 2)
        if self.sampler and self.sampler.kind:
            peak = peak_above(self.sampler.stop(), self.idle_used)
            if peak is not None:
                out["peak_device_gib"] = peak
        return out

    def _call(self, pipe, latents, dtype, steps: int):
        a = self.a
        return pipe(prompt=a.prompt, negative_prompt=a.negative, height=a.size, width=a.size,
                    num_inference_steps=steps, guidance_scale=a.guidance, num_images_per_prompt=latents.shape[0],
                    latents=latents.to(a.device, dtype)).images

    def _diffusers_batch(self, pipe, latents, dtype, key: str, method: str, slicing: bool) -> None:
        import numpy as np

        a, torch = self.a, self.torch
        if self.clock.left() < 60:
            self.stage(key, method=method, note="skipped: out of time")
            return
        if slicing:
            pipe.vae.enable_slicing()  # diffusers 0.42 has it on the VAE only
        log(f"{method}: warm-up (2 steps at the same batch)")
        try:
            with torch.inference_mode():
                self._call(pipe, latents, dtype, 2)
                sync(a.device)
                self._peaks_start()
                t0 = time.perf_counter()
                images = self._call(pipe, latents, dtype, a.steps)
                sync(a.device)
                dt = time.perf_counter() - t0
            peaks = self._peaks_stop()
            self.stage(key, method=method, wall_s=round(dt, 3), gen_s=round(dt, 3), **peaks,
                       frame0=image_stats(images[0]))
            if key == "b":
                self.frames0["b"] = np.asarray(images[0].convert("RGB"))
            log(f"{method}: {dt:.2f} s; {peaks}")
        except torch.cuda.OutOfMemoryError as e:
            self._peaks_stop()
            self.stage(key, method=method, note=f"out of memory: {str(e).splitlines()[0][:160]}")
            self.note(f"{method}: out of device memory")
        finally:
            if slicing:
                pipe.vae.disable_slicing()
            gc.collect()
            if a.cuda:
                torch.cuda.empty_cache()

    def _notebook_loop(self, pipe, latents) -> None:
        import numpy as np

        a, torch = self.a, self.torch
        method = "(a) notebook loop, float32, one frame per call"
        if self.clock.left() < self.NOTEBOOK_START_S:
            self.stage("a", method=method, note="skipped: out of time")
            return
        log(f"{method}: warm-up (1 frame, 2 steps)")
        with torch.inference_mode():
            self._call(pipe, latents[:1], torch.float32, 2)
            sync(a.device)
            self._peaks_start()
            t0 = time.perf_counter()
            done, first = 0, None
            for i in range(a.frames):
                img = self._call(pipe, latents[i:i + 1], torch.float32, a.steps)[0]
                if i == 0:
                    first = img
                done += 1
                elapsed = time.perf_counter() - t0
                if self.clock.left() < 20 or (self.clock.deadline and elapsed / done * (a.frames - done)
                                              > self.clock.left() - 20):
                    break
            sync(a.device)
            dt = time.perf_counter() - t0
        peaks = self._peaks_stop()
        fields = dict(method=method, frames_done=done, **peaks, frame0=image_stats(first))
        if done < a.frames:
            fields.update(wall_s=round(dt / done * a.frames, 3), gen_s=round(dt / done * a.frames, 3),
                          measured_s=round(dt, 3),
                          note=f"extrapolated from {done} of {a.frames} frames (time limit)")
        else:
            fields.update(wall_s=round(dt, 3), gen_s=round(dt, 3))
        self.stage("a", **fields)
        self.frames0["a"] = np.asarray(first.convert("RGB"))
        log(f"{method}: {dt:.2f} s for {done} frames; {peaks}")

    def _diffusers_e2e(self, folder: Path) -> None:
        """(e): bench/diffusers_e2e.py in a fresh process, the same job as sdinterp's whole command (the
        saved pipeline loaded onto the device, all frames in one call, PNG frames written), timed from
        the launch to its exit."""
        a = self.a
        method = f"(e) diffusers {a.dtype} script, end to end (process start to written frames)"
        if not (folder / "model_index.json").is_file():
            self.stage("e", method=method, note="skipped: no saved pipeline")
            return
        if self.clock.left() < self.E2E_START_S:
            self.stage("e", method=method, note="skipped: out of time")
            return
        out = self.work / "runs" / "e"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, str(REPO / "bench" / "diffusers_e2e.py"), "--model", str(folder), "--png-dir", str(out),
               "--device", a.device, "--dtype", a.dtype, "--prompt", a.prompt, "--negative", a.negative,
               "--seed", str(a.seed), "--frames", str(a.frames), "--steps", str(a.steps),
               "--guidance", f"{a.guidance:g}", "--size", str(a.size)]
        log(f"{method}: bench/diffusers_e2e.py --model MODEL --png-dir X ...")
        baseline = self.sampler.used() if (self.sampler and self.sampler.kind) else None
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if self.sampler and self.sampler.kind:
            self.sampler.start(pid=proc.pid)
        try:
            stdout, stderr = proc.communicate(
                timeout=max(30.0, self.clock.left() - 15.0) if self.clock.deadline else None)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            self.note(f"{method}: killed at the time limit")
        wall = time.perf_counter() - t0
        mem = self.sampler.stop() if (self.sampler and self.sampler.kind) else {}
        with open(self.out / "sdinterp.log", "a") as f:
            f.write(f"$ {shlex.join(cmd)}\n# exit {proc.returncode}, {wall:.2f} s (row e)\n# stdout:\n{stdout}"
                    f"# stderr:\n{stderr}\n")
        fields = dict(method=method, rc=proc.returncode, wall_s=round(wall, 3))
        if proc.returncode != 0:
            fields["note"] = f"exit status {proc.returncode}: " + (stderr.strip().splitlines() or [""])[-1][:200]
            self.stage("e", **fields)
            self.note(f"{method} failed (sdinterp.log)")
            return
        try:
            phases = json.loads(stdout.strip().splitlines()[-1])
            fields.update(phases_s=phases, gen_s=round(phases["generated_s"] - phases["load_s"], 3),
                          note=f"imports {phases['imports_s']:.2f} s, loaded at {phases['load_s']:.2f} s, "
                               f"frames generated at {phases['generated_s']:.2f} s, written at {phases['written_s']:.2f} s")
        except (IndexError, KeyError, json.JSONDecodeError) as e:
            fields["note"] = f"no phase times: {e}"
        if (peak := peak_above(mem, baseline)) is not None:
            fields["peak_device_gib"] = peak
        self._record_frames("e", out, fields)
        self.stage("e", **fields)
        log(f"{method}: exit {proc.returncode}, wall {wall:.2f} s; {fields.get('note', '')}")

    def _record_frames(self, key: str, png_dir: Path, fields: dict) -> None:
        """A run's PNG frames: how many were written, and the first one for the comparisons."""
        import numpy as np
        from PIL import Image

        frames = sorted(png_dir.glob("frame_*.png"))
        fields["frames_written"] = len(frames)
        if frames:
            img = np.asarray(Image.open(frames[0]).convert("RGB"))
            fields["frame0"] = image_stats(img)
            self.frames0[key] = img

    def _sdinterp_env(self, compiled: bool = False) -> dict:
        """sdinterp's environment; for a run of the compiled UNet (compiled), with the way around its
        crash that the triage found, if it found one."""
        env = dict(os.environ)
        if compiled and self.workaround:
            env.update(self.workaround["env"])
        if self.a.sdinterp_lib_path:
            env["LD_LIBRARY_PATH"] = self.a.sdinterp_lib_path + (":" + env["LD_LIBRARY_PATH"]
                                                                 if env.get("LD_LIBRARY_PATH") else "")
        return env

    def _sdinterp_warmup(self, bundle: Path) -> None:
        """One tiny untimed run: libtorch and the bundle in the page cache, so that the timed runs do not
        depend on their order."""
        a = self.a
        if not Path(a.sdinterp).is_file() or self.clock.left() < 40:
            return
        env = self._sdinterp_env()
        out = self.work / "runs" / "warmup"
        out.parent.mkdir(exist_ok=True)
        cmd = [a.sdinterp, "generate", "--bundle", str(bundle), "--prompt", "warm-up", "--seed", "1", "--frames", "2",
               "--steps", "1", "--height", "64", "--width", "64", "--device", a.device, "--png-dir", str(out),
               "--overwrite", "--progress", "none", "-q"]
        info = subprocess.run([a.sdinterp, "info", "--json"], capture_output=True, text=True, env=env)
        try:
            self.results["meta"]["sdinterp_info"] = json.loads(info.stdout)
        except json.JSONDecodeError:
            self.results["meta"]["sdinterp_info"] = (info.stdout + info.stderr).strip()[-500:]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        dt = time.perf_counter() - t0
        # The warm-up names no engine: which one ran is what the default (auto) chose for this bundle.
        try:
            calls = json.loads(Path(str(out) + ".json").read_text())["sdinterp"]["unet_calls"]
        except (OSError, KeyError, json.JSONDecodeError):
            calls = None
        self.stage("setup", sdinterp_warmup_s=round(dt, 2), sdinterp_warmup_rc=r.returncode,
                   sdinterp_default_engine_calls=calls)
        log(f"sdinterp warm-up (2 frames, 1 step, 64x64; untimed): exit {r.returncode}, {dt:.1f} s")
        with open(self.out / "sdinterp.log", "a") as f:
            f.write(f"$ {shlex.join(cmd)}\n# exit {r.returncode}, {dt:.2f} s (warm-up)\n# stderr:\n{r.stderr}\n")

    def _sdinterp(self, bundle: Path, name: str, flags: list[str], retry: bool = True, optional: bool = False) -> None:
        """One sdinterp row. `optional`: skipped unless (e) and (a) keep their time after it."""
        a = self.a
        words = list(flags)
        flags, extra_env = split_env(flags)
        warm = "warm" in name.split()
        key = "c" if name == "default" else "c-" + "-".join("".join(ch if ch.isalnum() else " " for ch in name).split())
        row = "(d)" if "--unet-engine" in flags and "aoti" in flags else "(c)"
        if warm:
            method = f"{row} sdinterp {name}: 2nd job of one `sdinterp batch`"
        else:
            method = f"{row} sdinterp" + (f" {name}" if name != "default" else "") + " (whole command)"
        binary = Path(a.sdinterp)
        if not binary.is_file():
            self.stage(key, method=method, note=f"skipped: no binary at {binary}")
            self.note(f"sdinterp binary missing: {binary}")
            return
        if self.clock.left() < (60 if warm else 40):
            self.stage(key, method=method, note="skipped: out of time")
            return
        if optional and self.clock.left() < self.ROW_S + self._tail_need():
            self.stage(key, method=method, note="skipped: out of time (what is left is kept for (e) and (a))")
            return
        cmd, png_dir = self._sdinterp_command(bundle, key, warm, flags)
        env = {**self._sdinterp_env(compiled=row == "(d)"), **extra_env}
        shown = shlex.join(["sdinterp", *cmd[1:]]).replace(str(bundle), "BUNDLE").replace(str(png_dir), "X")
        if extra_env:
            shown = " ".join(f"{k}={v}" for k, v in extra_env.items()) + " " + shown
        if row == "(d)" and self.workaround:
            shown = f"{self.workaround['name']} {shown}"
        log(f"{method}: {shown}")
        rc, wall, events, stderr, memory = self._launch_sdinterp(cmd, env, method)
        fields = dict(method=method, command=shown, rc=rc, wall_s=round(wall, 3))
        if rc != 0:
            fields["note"] = f"exit status {rc}: {error_line(stderr)}"
            self.stage(key, **fields)
            self.note(f"{method} failed: exit status {rc} (sdinterp.log)")
            # A compiled-UNet row that crashed is the crash the golden check may not have reached (its
            # tiny package can fail its own verification): looked at here then, and the row measured
            # again if a way around it turned up.
            if row == "(d)" and retry and self.workaround is None and crashed(rc, stderr):
                self._crash_triage(cmd, env, method)
                if self.workaround:
                    self._sdinterp(bundle, name, words, retry=False)
            return
        fields.update(run_measures(Path(str(png_dir) + ".json"), events, wall, warm, memory))
        self._record_frames(key, png_dir, fields)
        gen = fields.get("gen_s")
        if gen and not warm:
            # The ratio issue 13 judges, and what it is made of: the seconds outside the generation
            # (process start, load, writing the outputs' end, exit).
            fields.update(wall_over_gen=round(wall / gen, 2), outside_gen_s=round(wall - gen, 3))
        note = [f"load {fields['load_s']} s" if fields.get("load_s") is not None and not warm else "",
                f"outside generation {fields['outside_gen_s']} s" if "outside_gen_s" in fields else "",
                load_breakdown(fields.get("bundle_load_s")) if not warm else "",
                f"batch {fields.get('batch')}" if fields.get("batch") is not None else "",
                f"decode {fields.get('decode_chunk')} a call" if fields.get("decode_chunk") is not None else "",
                "wall = both jobs" if warm else ""]
        fields["note"] = ", ".join(n for n in note if n)
        self.stage(key, **fields)
        log(f"{method}: exit {rc}, wall {wall:.2f} s, generation {gen} s, load (to first event) "
            f"{fields['load_s']} s, batch {fields.get('batch')}, peak {fields.get('peak_device_gib')} GiB")

    def _sdinterp_command(self, bundle: Path, key: str, warm: bool, flags: list[str]) -> tuple[list[str], Path]:
        """The walk as an sdinterp command line: `generate` with flags, or when `warm`, a `batch` of two
        copies of the job; and the PNG directory whose frames and metadata the row reports (the
        second job's)."""
        a = self.a
        runs = self.work / "runs"
        runs.mkdir(exist_ok=True)
        job = {"bundle": str(bundle), "mode": "slerp-latent", "prompt": a.prompt, "negative": a.negative,
               "seed": a.seed, "frames": a.frames, "steps": a.steps, "guidance": a.guidance, "height": a.size,
               "width": a.size, "device": a.device}
        png_dirs = [runs / f"{key}-{i}" for i in (1, 2)] if warm else [runs / key]
        for d in png_dirs:
            shutil.rmtree(d, ignore_errors=True)
            Path(str(d) + ".json").unlink(missing_ok=True)
        png_dir = png_dirs[-1]
        binary = str(Path(a.sdinterp))
        if warm:
            jobs = runs / f"{key}.jsonl"
            jobs.write_text("".join(json.dumps({**job, "png-dir": str(d)}) + "\n" for d in png_dirs))
            return [binary, "batch", str(jobs), "--progress", "json", "-q", *flags], png_dir
        cmd = [binary, "generate"]
        for k, v in job.items():
            cmd += [f"--{k}", f"{v:g}" if isinstance(v, float) else str(v)]
        return cmd + ["--png-dir", str(png_dir), "--progress", "json", "-q", *flags], png_dir

    def _launch_sdinterp(self, cmd: list[str], env: dict, method: str) -> tuple[int, float, list, str, dict]:
        """Runs `cmd` to its end (killed at the run's time limit), its device memory sampled, and logs
        it in sdinterp.log. Returns its exit status, wall seconds, progress events (seconds since the
        launch, event), stderr, and its memory: the sampler's record with the device's use at launch
        (`baseline_used_bytes`, None without a sampler)."""
        sampling = bool(self.sampler and self.sampler.kind)
        baseline = self.sampler.used() if sampling else None
        events: list[tuple[float, dict]] = []
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        if sampling:
            self.sampler.start(pid=proc.pid)
        stderr_chunks: list[str] = []
        err_thread = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()), daemon=True)
        err_thread.start()
        stdout_other = []
        timeout_at = time.time() + max(30.0, self.clock.left() - 15.0) if self.clock.deadline else None
        for line in proc.stdout:
            now = time.perf_counter() - t0
            try:
                events.append((now, json.loads(line)))
            except json.JSONDecodeError:
                stdout_other.append(line.rstrip())
            if timeout_at and time.time() > timeout_at:
                proc.kill()
                self.note(f"{method}: killed at the time limit")
                break
        rc = proc.wait()
        wall = time.perf_counter() - t0
        err_thread.join(timeout=5)
        memory = {**(self.sampler.stop() if sampling else {}), "baseline_used_bytes": baseline}
        stderr = "".join(stderr_chunks)
        with open(self.out / "sdinterp.log", "a") as f:
            f.write(f"$ {shlex.join(cmd)}\n# exit {rc}, {wall:.2f} s\n# stdout (non-JSON): {stdout_other}\n"
                    f"# events: {len(events)}, first/last: {events[:1]} {events[-1:]}\n# stderr:\n{stderr}\n")
        return rc, wall, events, stderr, memory

    # ---- after the stages

    def _checks(self) -> None:
        f0 = self.frames0
        comps = self.results["comparisons"]
        c0 = f0.get("c")
        if c0 is None:
            c0 = next((f0[k] for k in f0 if k.startswith("c-")), None)
        if "b" in f0 and c0 is not None:
            comps["sdinterp vs diffusers (b)"] = psnr(c0, f0["b"])
        if "a" in f0 and "b" in f0:
            comps["diffusers fp32 (a) vs (b)"] = psnr(f0["a"], f0["b"])
        if "e" in f0 and "b" in f0:  # the same job: the script's pipeline is (b)'s, saved and loaded
            comps["diffusers script (e) vs (b)"] = psnr(f0["e"], f0["b"])
        other = [k for k in f0 if k.startswith("c-")] if "c" in f0 else []
        for k in other:
            comps[f"sdinterp {k} vs default"] = psnr(f0[k], f0["c"])
        st = self.results["stages"]
        checks = []
        b, a_ = st.get("b", {}), st.get("a", {})
        for key, engine in (("c", "TorchScript UNet (c)"), ("c-aoti", "AOTInductor UNet (d)")):
            c = st.get(key, {})
            if not c.get("gen_s"):
                continue
            warm = st.get(f"{key}-warm", {}).get("gen_s")
            for base, name, need in ((b, "(b)", 1.5), (a_, "(a)", 8.0)):
                if base.get("gen_s"):
                    r = base["gen_s"] / c["gen_s"]
                    value = f"{r:.2f}x" + (f" (warm 2nd job: {base['gen_s'] / warm:.2f}x)" if warm else "")
                    checks.append({"criterion": f"{engine}: >= {need:g}x faster than {name}, model loaded",
                                   "value": value, "pass": r >= need})
            if c.get("wall_over_gen"):
                checks.append({"criterion": f"{engine}: whole command <= 1.3x its generation time",
                               "value": f"{c['wall_over_gen']:.2f}x", "pass": c["wall_over_gen"] <= 1.3})
            e = st.get("e", {})
            if c.get("wall_s") and e.get("wall_s") and e.get("rc") == 0:
                checks.append({"criterion": f"{engine}: whole command faster than (e), the diffusers script end to end",
                               "value": f"{c['wall_s']:.2f} s against {e['wall_s']:.2f} s",
                               "pass": c["wall_s"] < e["wall_s"]})
            if c.get("peak_device_gib") is not None:
                checks.append({"criterion": f"{engine}: peak GPU memory <= 10 GiB by default",
                               "value": f"{c['peak_device_gib']:.2f} GiB", "pass": c["peak_device_gib"] <= 10})
        # Both packages (export_bundle.py --aoti --aoti-vae), warm: the speed criteria on that row.
        both = st.get("c-aoti-warm-compiled-decode", {}).get("gen_s")
        for base, name, need in ((b, "(b)", 1.5), (a_, "(a)", 8.0)):
            if both and base.get("gen_s"):
                r = base["gen_s"] / both
                checks.append({"criterion": f"AOTInductor UNet and VAE decoder (d), warm 2nd job: >= {need:g}x faster "
                                            f"than {name}, model loaded", "value": f"{r:.2f}x", "pass": r >= need})
        golden = st.get("golden", {})
        if "ok" in golden:
            runs = golden.get("cases", [])
            engines = sorted({r["engine"] for r in runs})
            worst = max((r.get("max_diff") or 0 for r in runs if r.get("rc") == 0), default=None)
            checks.append({"criterion": f"{self.a.device} float32 frames match the golden frames (tiny-sd, "
                                        f"{len(runs) // max(1, len(engines))} cases; {', '.join(engines)})",
                           "value": f"{sum(r['ok'] for r in runs)}/{len(runs)} runs within tolerance; "
                                    f"max |diff| {worst}", "pass": golden["ok"]})
        parity = golden.get("parity")
        if isinstance(parity, list) and parity:
            # Judged on sdinterp's defaults; the per-frame run is shown beside them.
            judged = [r for r in parity if r["engine"] != PER_FRAME_RUN] or parity
            worst = max(r["ours_max_diff"] for r in judged)
            checks.append({"criterion": f"{self.a.device} float32 parity on the golden cases: sdinterp as close to "
                                        f"diffusers on {self.a.device} as that is to the golden frames (share of "
                                        "8-bit values that differ), and within 1/255 everywhere",
                           "value": "; ".join(f"{r['engine']} {r['case']}: {r['ours_unequal']:.5f} vs "
                                              f"{r['diffusers_unequal']:.5f}"
                                              + (f" ({r['same_batching_unequal']:.5f} against diffusers rendering "
                                                 f"{r['batching'][0]} and decoding {r['batching'][1]} at a time)"
                                                 if "batching" in r else "") for r in parity)
                                    + f"; max |diff| {worst} (defaults)",
                           "pass": all(r["ok"] for r in judged)})
        smoke = st.get("smoke_command", {})
        if "rc" in smoke:
            checks.append({"criterion": f"the smoke command ({smoke['command']}) passes on this machine",
                           "value": f"exit {smoke['rc']}, {smoke['seconds']} s", "pass": smoke["rc"] == 0})
        c = st.get("c", {})
        capped = st.get("c-max-vram-10", {})
        if capped.get("gen_s") and c.get("gen_s"):
            r = capped["gen_s"] / c["gen_s"]
            checks.append({"criterion": "--max-vram 10 loses <= 10% speed against the default run",
                           "value": f"{(r - 1) * 100:+.1f}%", "pass": r <= 1.10})
        # A smoke run's speed and memory are not meaningful; its golden check is.
        self.results["checks"] = checks if not self.a.smoke else [
            ch if "golden" in ch["criterion"] else dict(ch, **{"pass": f"{ch['pass']} (smoke: not meaningful)"})
            for ch in checks]

    def _save_frames(self) -> None:
        try:
            import numpy as np
            from PIL import Image

            tiles = [self.frames0[k] for k in ("b", "c", "a") if k in self.frames0]
            if tiles:
                Image.fromarray(np.concatenate(tiles, axis=1)).save(self.out / "frame0_compare.png")
        except Exception as e:  # a picture is a nicety
            log(f"frame0_compare.png not written: {e}")


def main(argv=None) -> int:
    args = parse_args(argv)
    return Comparison(args).run()


if __name__ == "__main__":
    sys.exit(main())
