"""Shared fixtures of the export tests: random pipelines, their bundles, sdinterp and diffusers runs.

Nothing here downloads: HF_HUB_OFFLINE is set for the whole session.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
EXPORTER = REPO / "scripts" / "export_bundle.py"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "scripts"))

import random_pipelines  # noqa: E402
from bundle_weights import inline_weights, load_module, module_tensors, save_module, weights_path  # noqa: E402,F401
from golden_cases import frame_agreement  # noqa: E402

# The notebook's settings.
STEPS, GUIDANCE = 15, 8.0


def rewrite_module(path: Path, module) -> None:
    """Saves a changed module of a bundle the way the bundle keeps its modules: the weights beside the
    file when they were (format version 3), inside it otherwise."""
    import torch

    def save(m, p):
        torch.jit.save(m, str(p))

    beside = weights_path(path).is_file()
    for f in (path, weights_path(path)):
        f.unlink(missing_ok=True)  # links (bundles copied with links to models/tiny-sd) are replaced, not written through
    if beside:
        save_module(module, path, save)
    else:
        save(module, path)


def load_exporter():
    spec = importlib.util.spec_from_file_location("export_bundle", EXPORTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def sdinterp() -> str:
    path = os.environ.get("SDINTERP_BINARY") or next(
        (str(p) for p in (REPO / "build" / "sdinterp", REPO / "build-export" / "sdinterp") if p.is_file()), "")
    if not path or not Path(path).is_file():
        pytest.fail("set SDINTERP_BINARY to the built sdinterp binary (ctest does)")
    return path


def run_exporter_cli(*args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """scripts/export_bundle.py as a user runs it, in a fresh interpreter."""
    proc = subprocess.run([sys.executable, str(EXPORTER), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}, timeout=600)
    if check and proc.returncode != 0:
        pytest.fail(f"export_bundle.py {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc


def export_in_process(model: Path, out: Path, *extra: str) -> None:
    """The exporter's main() in this interpreter (saves re-importing torch and diffusers)."""
    rc = load_exporter().main([str(model), str(out), *extra])
    assert rc == 0, f"export of {model} exited {rc}"


class Model:
    """A random pipeline, its diffusers folder and its exported bundle."""

    def __init__(self, kind: str, root: Path):
        self.kind = kind
        self.pipe = random_pipelines.build(kind)
        self.folder = root / kind
        self.pipe.save_pretrained(self.folder)
        self.bundle = root / f"{kind}-bundle"
        export_in_process(self.folder, self.bundle)
        self._refs: dict = {}

    def reference(self, prompt: str, negative: str, seed: int, height: int, width: int, latent_index: int = 0,
                  latent_count: int = 1) -> np.ndarray:
        key = (prompt, negative, seed, height, width, latent_index, latent_count)
        if key not in self._refs:
            self._refs[key] = reference_image(self.pipe, prompt, negative, seed, height, width, latent_index,
                                              latent_count)
        return self._refs[key]


def reference_image(pipe, prompt: str, negative: str, seed: int, height: int, width: int, latent_index: int = 0,
                    latent_count: int = 1) -> np.ndarray:
    """diffusers' image [H, W, 3] in [0, 1]: StableDiffusionPipeline with the modules of `pipe` and the
    notebook's LMS scheduler, latents drawn as sdinterp draws them (torch.manual_seed, torch.randn on
    the CPU)."""
    import torch
    from diffusers import LMSDiscreteScheduler, StableDiffusionPipeline

    scheduler = LMSDiscreteScheduler(**random_pipelines.SCHEDULE,
                                     prediction_type=pipe.scheduler.config.prediction_type)
    pipe = StableDiffusionPipeline(vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                                   unet=pipe.unet, scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    torch.manual_seed(seed)
    latents = torch.randn(latent_count, 4, height // 8, width // 8)[latent_index:latent_index + 1]
    with torch.no_grad():
        out = pipe(prompt=prompt, negative_prompt=negative, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                   height=height, width=width, latents=latents, output_type="np").images
    return out[0]


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="session")
def sd1(workdir) -> Model:
    return Model("sd1-tiny", workdir)


@pytest.fixture(scope="session")
def sd1_deep(workdir) -> Model:
    return Model("sd1-deep", workdir)


@pytest.fixture(scope="session")
def sd2(workdir) -> Model:
    return Model("sd2-tiny", workdir)


def generate(sdinterp: str, bundle: Path, out: Path, *args: str) -> list[np.ndarray]:
    """Runs sdinterp generate --png-dir OUT and returns the frames as uint8 arrays."""
    from PIL import Image

    cmd = [sdinterp, "generate", "--bundle", str(bundle), "--png-dir", str(out), "--steps", str(STEPS),
           "--guidance", str(GUIDANCE), "--progress", "none", "-q", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}"
    frames = sorted(out.glob("frame_*.png"))
    assert frames, f"no frames in {out}"
    return [np.asarray(Image.open(f).convert("RGB")) for f in frames]


def assert_frame_matches(ours: np.ndarray, reference: np.ndarray, what: str) -> None:
    """The golden tolerance on 8-bit frames (golden_cases.frame_agreement): |ours - round(255 x)| <= 1,
    at least 99.9% equal; and the reference is a real picture of noise, not a saturated or flat one."""
    r = frame_agreement(ours, reference)
    if "max_diff" in r:
        print(f"{what}: max |sdinterp - diffusers| = {r['max_diff']}, {100 * r['equal']:.3f}% equal")  # pytest -s
    assert r["ok"], (f"{what}: {r['problem']}" if "problem" in r else
                     f"{what}: max |sdinterp - diffusers| = {r['max_diff']} (<= 1 expected), "
                     f"{100 * r['equal']:.3f}% equal (>= 99.9%)")
