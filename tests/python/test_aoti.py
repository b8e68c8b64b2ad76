"""The AOTInductor UNet (export_bundle.py --aoti, sdinterp --unet-engine): golden frames through the
compiled path, the exporter's record, and every way the package can be missing or unusable.

Compiling takes about 40 s per tiny model on two cores; the packages are made once per session.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import (assert_frame_matches, export_in_process, generate, inline_weights, load_exporter, load_module,
                      rewrite_module)
import tiny_sd
from golden_cases import CASES, case_args, golden_frames

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_aoti(workdir) -> Path:
    out = workdir / "tiny-sd-aoti"
    tiny_sd.make_aoti_bundle(out, load_exporter())
    return out


@pytest.fixture(scope="session")
def tiny_aoti_vae(tiny_aoti, workdir) -> Path:
    """tiny-sd with both packages: tiny_aoti's unet.pt2 and a compiled VAE decoder."""
    out = workdir / "tiny-sd-aoti-vae"
    tiny_sd.add_compiled_decoder(tiny_aoti, out, load_exporter())
    return out


def unet_calls(png_dir: Path) -> dict:
    return json.loads(png_dir.with_name(png_dir.name + ".json").read_text())["sdinterp"]["unet_calls"]


def decode_calls(png_dir: Path) -> dict:
    return json.loads(png_dir.with_name(png_dir.name + ".json").read_text())["sdinterp"]["decode_calls"]


def run(sdinterp: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sdinterp, *map(str, args)], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_frames_through_the_compiled_unet(case, tiny_aoti, sdinterp, tmp_path):
    golden = golden_frames(case)
    out = tmp_path / "frames"
    frames = generate(sdinterp, tiny_aoti, out, *case_args(case), "--unet-engine", "aoti")
    assert len(frames) == golden.shape[0]
    for i, frame in enumerate(frames):
        assert_frame_matches(frame, golden[i], f"{case['name']} frame {i} (aoti)")
    # Every denoising call went through the package: one chunk of all frames, 15 LMS steps.
    assert unet_calls(out) == {"aoti": 15, "torchscript": 0}


def test_golden_comparison_fails_for_another_seed(tiny_aoti, sdinterp, tmp_path):
    case = dict(CASES[3], seed=CASES[3]["seed"] + 1)
    frames = generate(sdinterp, tiny_aoti, tmp_path / "f", *case_args(case), "--unet-engine", "aoti")
    with pytest.raises(AssertionError):
        assert_frame_matches(frames[1], golden_frames(CASES[3])[1], "other seed")


def test_calls_outside_the_package_go_to_torchscript(tiny_aoti, sdinterp, tmp_path):
    case = CASES[1]  # 6 frames
    # --batch 4 with guidance: UNet batches of 8 and 4 (both in 2..63); no guidance and --batch 5:
    # batches of 5 and 1, and 1 is below the package's range.
    out = tmp_path / "a"
    generate(sdinterp, tiny_aoti, out, *case_args(case), "--unet-engine", "aoti", "--batch", "4")
    assert unet_calls(out) == {"aoti": 30, "torchscript": 0}
    out = tmp_path / "b"
    proc = run(sdinterp, "generate", "--bundle", tiny_aoti, "--png-dir", out, *case_args(case), "--guidance", "1",
               "--batch", "5", "-q", "--progress", "none", "--unet-engine", "auto")
    assert proc.returncode == 0, proc.stderr
    assert unet_calls(out) == {"aoti": 15, "torchscript": 15}
    out = tmp_path / "c"
    generate(sdinterp, tiny_aoti, out, *case_args(case), "--unet-engine", "torchscript")
    assert unet_calls(out) == {"aoti": 0, "torchscript": 15}


def test_automatic_batch_keeps_within_the_package(tiny_aoti, sdinterp, tmp_path):
    # 40 frames with guidance are 80 UNet rows: the package takes 63, so 31 frames per call at most,
    # evened out to two chunks of 20.
    out = tmp_path / "f"
    proc = run(sdinterp, "generate", "--bundle", tiny_aoti, "--png-dir", out, "--prompt", "a cat", "--seed", 3,
               "--frames", 40, "--steps", 3, "--height", 32, "--width", 32, "-q", "--progress", "none")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(out.with_name("f.json").read_text())
    assert meta["batch"] == 20
    assert meta["sdinterp"]["unet_calls"] == {"aoti": 6, "torchscript": 0}


def test_unsupported_size_is_refused_for_aoti_and_falls_back_for_auto(tiny_aoti, sdinterp, tmp_path):
    # 1040 px is 130 latents: beyond the package's 128. (An odd latent size, not a multiple of the
    # down factor, would do too, but tiny-sd's TorchScript UNet was traced at even sizes only.)
    base = ["generate", "--bundle", tiny_aoti, "--prompt", "a cat", "--seed", 1, "--frames", 2, "--steps", 2,
            "--height", 1040, "--width", 64, "-q", "--progress", "none"]
    proc = run(sdinterp, *base, "--png-dir", tmp_path / "a", "-o", tmp_path / "a.gif", "--unet-engine", "aoti")
    assert proc.returncode == 3
    assert proc.stderr.strip().count("\n") == 0
    assert "compiled UNet takes batch 2..63, images in steps of 16 px up to 1024 px, not 1040x64 px" in proc.stderr, \
        proc.stderr
    assert list(tmp_path.iterdir()) == [], "nothing written, no temporary files left"
    proc = run(sdinterp, *base, "--png-dir", tmp_path / "b")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert unet_calls(tmp_path / "b") == {"aoti": 0, "torchscript": 2}


def test_missing_or_broken_package(tiny_aoti, sdinterp, tmp_path):
    missing = tmp_path / "missing"
    tiny_sd.copy_without_package(tiny_aoti, missing)
    broken = tmp_path / "broken"
    tiny_sd.copy_without_package(tiny_aoti, broken)
    (broken / "unet.pt2").write_bytes(b"PK\x03\x04 not really a zip")
    base = ["generate", "--prompt", "a cat", "--seed", 1, "--frames", 2, "--steps", 2, "-q", "--progress", "none"]
    for bundle, why in ((missing, "unet.pt2: missing file"), (broken, "cannot load the AOTInductor package")):
        proc = run(sdinterp, *base, "--bundle", bundle, "--png-dir", tmp_path / f"{bundle.name}-aoti", "--unet-engine", "aoti")
        assert proc.returncode == 3, proc.stderr
        assert why in proc.stderr and proc.stderr.strip().count("\n") == 0, proc.stderr
        out = tmp_path / f"{bundle.name}-auto"
        proc = run(sdinterp, *base, "--bundle", bundle, "--png-dir", out)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.startswith("sdinterp: warning: ") and why in proc.stderr, proc.stderr
        assert proc.stderr.strip().count("\n") == 0 and "the UNet runs from TorchScript" in proc.stderr
        assert unet_calls(out) == {"aoti": 0, "torchscript": 2}
    # A bundle without a package: aoti names the re-export.
    proc = run(sdinterp, *base, "--bundle", REPO / "models" / "tiny-sd", "--png-dir", tmp_path / "plain",
               "--unet-engine", "aoti")
    assert proc.returncode == 3 and "has no compiled UNet; re-export it with --aoti" in proc.stderr, proc.stderr


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_frames_through_the_compiled_decoder(case, tiny_aoti_vae, sdinterp, tmp_path):
    golden = golden_frames(case)
    out = tmp_path / "frames"
    frames = generate(sdinterp, tiny_aoti_vae, out, *case_args(case))
    assert len(frames) == golden.shape[0]
    for i, frame in enumerate(frames):
        assert_frame_matches(frame, golden[i], f"{case['name']} frame {i} (compiled UNet and decoder)")
    # The default engine took both packages: every decode call went through the compiled decoder.
    assert unet_calls(out) == {"aoti": 15, "torchscript": 0}
    calls = decode_calls(out)
    assert calls["aoti"] >= 1 and calls["torchscript"] == 0, calls


def test_compiled_decoder_takes_every_chunk_and_torchscript_engine_leaves_it(tiny_aoti_vae, sdinterp, tmp_path):
    # 5 frames, one frame a UNet call: decode calls of 1 frame (the package's batch_min), the
    # decoder's package used with --unet-engine aoti as with auto; torchscript runs neither package.
    # The frames agree within 1 of 255 either way.
    args = ["--mode", "slerp-latent", "--prompt", "a cat", "--seed", "5", "--frames", "5", "--batch", "1"]
    compiled = generate(sdinterp, tiny_aoti_vae, tmp_path / "aoti", *args, "--unet-engine", "aoti")
    meta = json.loads((tmp_path / "aoti.json").read_text())["sdinterp"]
    assert meta["decode_chunk"] == 1 and decode_calls(tmp_path / "aoti") == {"aoti": 5, "torchscript": 0}
    assert meta["bundle_load_s"]["compiled_vae_decoder"] > 0
    scripted = generate(sdinterp, tiny_aoti_vae, tmp_path / "ts", *args, "--unet-engine", "torchscript")
    assert decode_calls(tmp_path / "ts") == {"aoti": 0, "torchscript": 5}
    assert unet_calls(tmp_path / "ts") == {"aoti": 0, "torchscript": 75}
    for i, (a, b) in enumerate(zip(compiled, scripted)):
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
        assert diff.max() <= 1 and (diff == 0).mean() >= 0.999, f"frame {i}: max {diff.max()}"
    info = subprocess.run([sdinterp, "info", "--bundle", str(tiny_aoti_vae), "--json"], capture_output=True,
                          text=True, check=True)
    summary = json.loads(info.stdout)["bundle"]
    assert summary["compiled_vae_decoder"]["file"] == "vae_decoder.pt2"
    assert summary["compiled_vae_decoder"]["batch_min"] == 1 and summary["compiled_unet"]["file"] == "unet.pt2"


def test_missing_or_broken_decoder_package_falls_back_with_a_warning(tiny_aoti_vae, sdinterp, tmp_path):
    import shutil

    base = ["generate", "--prompt", "a cat", "--seed", 1, "--frames", 2, "--steps", 2, "-q", "--progress", "none"]
    for name, why in (("missing", "vae_decoder.pt2: missing file (model.json names it; re-export the bundle with "
                                  "--aoti-vae)"),
                      ("broken", "cannot load the AOTInductor package")):
        bundle = tmp_path / name
        shutil.copytree(tiny_aoti_vae, bundle, symlinks=True)
        (bundle / "vae_decoder.pt2").unlink()
        if name == "broken":
            (bundle / "vae_decoder.pt2").write_bytes(b"PK\x03\x04 not really a zip")
        # Never an error, with either engine that takes packages: the UNet's still runs.
        for engine in ("auto", "aoti"):
            out = tmp_path / f"{name}-{engine}"
            proc = run(sdinterp, *base, "--bundle", bundle, "--png-dir", out, "--unet-engine", engine)
            assert proc.returncode == 0, proc.stderr
            assert proc.stderr.startswith("sdinterp: warning: ") and why in proc.stderr, proc.stderr
            assert proc.stderr.strip().count("\n") == 0 and "the VAE decoder runs from TorchScript" in proc.stderr
            assert decode_calls(out) == {"aoti": 0, "torchscript": 1}
            assert unet_calls(out) == {"aoti": 2, "torchscript": 0}


def test_decoder_package_for_weights_of_other_shapes_is_refused(tiny_aoti_vae, sdinterp, tmp_path):
    # The record's signature of the weights it was compiled for no longer matches vae_decoder.pt's.
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_aoti_vae, bundle, symlinks=True)
    manifest = json.loads((bundle / "model.json").read_text())
    manifest["vae"]["compiled"]["weights_fnv1a64"] = "0123456789abcdef"
    (bundle / "model.json").unlink()
    (bundle / "model.json").write_text(json.dumps(manifest))
    out = tmp_path / "f"
    proc = run(sdinterp, "generate", "--bundle", bundle, "--prompt", "a cat", "--seed", 1, "--frames", 2, "--steps", 2,
               "-q", "--progress", "none", "--png-dir", out)
    assert proc.returncode == 0, proc.stderr
    assert "compiled for a VAE decoder whose weights have other shapes" in proc.stderr, proc.stderr
    assert decode_calls(out) == {"aoti": 0, "torchscript": 1}


@pytest.fixture(scope="session")
def sd1_aoti(sd1, workdir) -> Path:
    bundle = workdir / "sd1-tiny-aoti"
    export_in_process(sd1.folder, bundle, "--aoti", "--aoti-vae")
    return bundle


def test_packages_open_from_several_threads_at_once(sd1_aoti, sdinterp):
    # sdinterp opens the UNet's and the decoder's packages beside each other; LibTorch's loader parses
    # every package's metadata into one static object, so its calls take one lock
    # (src/bundle/package_loader.h). Without the lock this C++ test fails or crashes nearly every run.
    binary = Path(sdinterp).parent / "tests" / "test_package_threads_torch"
    assert binary.is_file(), f"{binary} is missing: build the tests"
    env = dict(os.environ, SDINTERP_TEST_PACKAGES=f"{sd1_aoti / 'unet.pt2'}:{sd1_aoti / 'vae_decoder.pt2'}")
    proc = subprocess.run([str(binary)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "[  PASSED  ] 1 test." in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_exporter_aoti_records_verifies_and_matches_torchscript(sd1, sd1_aoti, sdinterp, tmp_path):
    bundle = sd1_aoti
    manifest = json.loads((bundle / "model.json").read_text())
    compiled = manifest["unet"]["compiled"]
    assert {k: compiled[k] for k in ("kind", "file", "batch_min", "batch_max", "latent_multiple", "latent_max")} == {
        "kind": "aoti", "file": "unet.pt2", "batch_min": 2, "batch_max": 63, "latent_multiple": 2, "latent_max": 128}
    assert compiled["compile_seconds"] > 0 and compiled["tuning"] == "default"
    report = manifest["export"]["verification"]["modules"]["unet_aoti"]
    assert report["ok"] and len(report["checks"]) == 2
    assert all(c["relative_error"] <= 1e-4 for c in report["checks"])
    # --aoti-vae: the VAE decoder's package, recorded and verified the same way.
    decoder = manifest["vae"]["compiled"]
    assert {k: decoder[k] for k in ("kind", "file", "batch_min", "batch_max", "latent_multiple", "latent_max")} == {
        "kind": "aoti", "file": "vae_decoder.pt2", "batch_min": 1, "batch_max": 63, "latent_multiple": 1,
        "latent_max": 128}
    assert len(decoder["weights_fnv1a64"]) == 16 and (bundle / "vae_decoder.pt2").is_file()
    report = manifest["export"]["verification"]["modules"]["vae_decoder_aoti"]
    assert report["ok"] and [c["inputs"] for c in report["checks"]] == ["[3, 4, 5, 7]", "[1, 4, 4, 6]"]
    assert all(c["relative_error"] <= 1e-4 for c in report["checks"])
    # The same walk from the compiled and the TorchScript UNet of the same bundle.
    args = ["--mode", "slerp-latent", "--prompt", "a photo of a cat", "--seed", "11", "--frames", "4"]
    compiled_frames = generate(sdinterp, bundle, tmp_path / "aoti", *args, "--unet-engine", "aoti")
    scripted_frames = generate(sdinterp, bundle, tmp_path / "ts", *args, "--unet-engine", "torchscript")
    assert unet_calls(tmp_path / "aoti") == {"aoti": 15, "torchscript": 0}
    assert decode_calls(tmp_path / "aoti") == {"aoti": 1, "torchscript": 0}
    assert decode_calls(tmp_path / "ts") == {"aoti": 0, "torchscript": 1}
    for i, (a, b) in enumerate(zip(compiled_frames, scripted_frames)):
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
        assert diff.max() <= 1 and (diff == 0).mean() >= 0.999, f"frame {i}: max {diff.max()}"
    # And against diffusers, as every export is checked.
    for i, frame in enumerate(compiled_frames):
        if i in (0, len(compiled_frames) - 1):
            ref = sd1.reference("a photo of a cat", "", 11, 64, 64, latent_index=0 if i == 0 else 1, latent_count=2)
            assert_frame_matches(frame, ref, f"sd1-tiny aoti frame {i} vs diffusers")


def assert_renders_diffusers_frames_through_the_package(sd1, sdinterp: str, bundle: Path, out: Path) -> None:
    """A 2-frame prompt-walk of sd1-tiny on `bundle`: every UNet call on the package, frames as diffusers'."""
    frames = generate(sdinterp, bundle, out, "--prompt", "a photo of a cat", "--seed", 1234,
                      "--mode", "prompt-walk", "--frames", 2, "--step-size", 0)
    assert unet_calls(out) == {"aoti": 15, "torchscript": 0}
    ref = sd1.reference("a photo of a cat", "", 1234, 64, 64)
    for i, frame in enumerate(frames):
        assert_frame_matches(frame, ref, f"frame {i}")


def test_add_aoti_to_an_existing_bundle(sd1, sd2, sdinterp, tmp_path):
    import shutil

    from conftest import run_exporter_cli

    bundle = tmp_path / "bundle"
    shutil.copytree(sd1.bundle, bundle)
    before = json.loads((bundle / "model.json").read_text())
    assert "compiled" not in before["unet"]
    # Refused, with nothing changed: another dtype, another model.
    proc = run_exporter_cli(sd1.folder, bundle, "--add-aoti", "--dtype", "bfloat16", check=False)
    assert proc.returncode == 2 and "is a cpu/float32 bundle; pass --device cpu --dtype float32" in proc.stderr
    proc = run_exporter_cli(sd2.folder, bundle, "--add-aoti", check=False)
    assert proc.returncode == 2 and "is not the model" in proc.stderr, proc.stderr[-2000:]
    proc = run_exporter_cli(sd1.folder, bundle, "--aoti-tuning", "fast-diffusion", "--overwrite", check=False)
    assert proc.returncode == 2 and "--aoti-tuning fast-diffusion is for the compiled UNet: add --aoti or --add-aoti" \
        in proc.stderr, proc.stderr[-2000:]
    assert json.loads((bundle / "model.json").read_text()) == before and not (bundle / "unet.pt2").exists()
    assert not list(tmp_path.glob(".bundle.aoti-*")), "no scratch folder left"

    # Compiled with the fast-diffusion inductor settings (1x1 convolutions as matrix products, no
    # epilogue fusion; the GPU-only tunings are inert here): verified, recorded, and the frames below
    # still match diffusers.
    run_exporter_cli(sd1.folder, bundle, "--add-aoti", "--aoti-tuning", "fast-diffusion")
    after = json.loads((bundle / "model.json").read_text())
    assert after["unet"]["compiled"]["file"] == "unet.pt2" and (bundle / "unet.pt2").is_file()
    assert after["unet"]["compiled"]["tuning"] == "fast-diffusion"
    info = subprocess.run([sdinterp, "info", "--bundle", str(bundle)], capture_output=True, text=True, check=True)
    assert "compile settings fast-diffusion" in info.stdout, info.stdout
    assert after["export"]["verification"]["modules"]["unet_aoti"]["ok"]
    # Everything else is as it was.
    for key in ("text_encoder", "vae", "tokenizer", "source", "noise_schedule"):
        assert after[key] == before[key]
    assert not list(tmp_path.glob(".bundle.aoti-*"))
    assert_renders_diffusers_frames_through_the_package(sd1, sdinterp, bundle, tmp_path / "f")



def test_a_package_compiled_for_one_call_shape_runs_that_shape_only(sd1, sdinterp, tmp_path):
    # --aoti-static (issue 13: static shapes for the common job beside the dynamic package): the UNet
    # compiled for one batch and latent size, recorded so that sdinterp runs it for that shape and the
    # TorchScript UNet for every other call.
    import shutil

    from conftest import run_exporter_cli

    bundle = tmp_path / "bundle"
    shutil.copytree(sd1.bundle, bundle)
    before = json.loads((bundle / "model.json").read_text())
    for bad, says in (("4x8", "give the UNet batch and latent size as BATCHxHxW"),
                      ("4x8x12", "the latent must be square"), ("1x8x8", "the batch must be 2..63")):
        proc = run_exporter_cli(sd1.folder, bundle, "--add-aoti", "--aoti-static", bad, check=False)
        assert proc.returncode == 2 and f"--aoti-static {bad}: {says}" in proc.stderr, proc.stderr[-2000:]
    proc = run_exporter_cli(sd1.folder, bundle, "--aoti-static", "2x8x8", "--overwrite", check=False)
    assert proc.returncode == 2 and "--aoti-static is for the compiled UNet: add --aoti or --add-aoti" in proc.stderr
    assert json.loads((bundle / "model.json").read_text()) == before and not (bundle / "unet.pt2").exists()

    # One frame a call with guidance at 64x64: UNet batch 2, 8x8 latents.
    run_exporter_cli(sd1.folder, bundle, "--add-aoti", "--aoti-static", "2x8x8")
    record = json.loads((bundle / "model.json").read_text())["unet"]["compiled"]
    assert {k: record[k] for k in ("batch_min", "batch_max", "latent_multiple", "latent_max")} == {
        "batch_min": 2, "batch_max": 2, "latent_multiple": 8, "latent_max": 8}
    info = subprocess.run([sdinterp, "info", "--bundle", str(bundle)], capture_output=True, text=True, check=True)
    assert "batch 2 only, images of 64x64 px only, compile settings default" in info.stdout, info.stdout
    assert_renders_diffusers_frames_through_the_package(sd1, sdinterp, bundle, tmp_path / "f")
    # Two frames a call (UNet batch 4): the TorchScript UNet.
    generate(sdinterp, bundle, tmp_path / "two", "--prompt", "a photo of a cat", "--seed", 1234, "--frames", 2,
             "--batch", 2)
    assert unet_calls(tmp_path / "two") == {"aoti": 0, "torchscript": 15}
    # Another size: the TorchScript UNet, or with --unet-engine aoti a refusal in one line.
    generate(sdinterp, bundle, tmp_path / "wide", "--prompt", "a cat", "--seed", 1, "--frames", 2, "--width", 128)
    assert unet_calls(tmp_path / "wide") == {"aoti": 0, "torchscript": 15}
    proc = run(sdinterp, "generate", "--bundle", bundle, "--prompt", "a cat", "--seed", 1, "--frames", 2,
               "--steps", 2, "--width", 128, "--png-dir", tmp_path / "refused", "-q", "--unet-engine", "aoti")
    assert proc.returncode == 3 and proc.stderr.count("\n") == 1, proc.stderr
    assert "the compiled UNet takes batch 2 only, images of 64x64 px only, not 64x128 px" in proc.stderr, proc.stderr
    assert not (tmp_path / "refused").exists()


def test_add_aoti_reusing_a_package_compiled_before(sd1, sd1_aoti, sdinterp, tmp_path):
    # A package brought back from an earlier (GPU) run is taken instead of compiling, verified like a
    # fresh compile, and recorded as reused; one that cannot load here is refused with nothing changed.
    import shutil

    from conftest import run_exporter_cli

    bundle = tmp_path / "bundle"
    shutil.copytree(sd1.bundle, bundle)
    before = json.loads((bundle / "model.json").read_text())
    broken = tmp_path / "broken.pt2"
    broken.write_bytes(b"not a package")
    proc = run_exporter_cli(sd1.folder, bundle, "--add-aoti", "--aoti-reuse", broken, check=False)
    assert proc.returncode == 2 and "--aoti-reuse broken.pt2: cannot load it here" in proc.stderr, proc.stderr[-2000:]
    assert json.loads((bundle / "model.json").read_text()) == before and not (bundle / "unet.pt2").exists()
    proc = run_exporter_cli(sd1.folder, bundle, "--aoti-reuse", sd1_aoti / "unet.pt2", "--overwrite", check=False)
    assert proc.returncode == 2 and "--aoti-reuse is for the compiled UNet" in proc.stderr, proc.stderr[-2000:]

    proc = run_exporter_cli(sd1.folder, bundle, "--add-aoti", "--aoti-vae-reuse", sd1_aoti / "vae_decoder.pt2",
                            check=False)
    assert proc.returncode == 2 and "--aoti-vae-reuse is for the compiled VAE decoder: add --aoti-vae" in proc.stderr
    proc = run_exporter_cli(sd1.folder, bundle, "--aoti-vae", "--overwrite", check=False)
    assert proc.returncode == 2 and "--aoti-vae compiles the VAE decoder beside the UNet: add --aoti or --add-aoti" \
        in proc.stderr, proc.stderr[-2000:]
    assert json.loads((bundle / "model.json").read_text()) == before

    proc = run_exporter_cli(sd1.folder, bundle, "--add-aoti", "--aoti-reuse", sd1_aoti / "unet.pt2")
    assert "reusing unet.pt2 instead of compiling" in proc.stderr
    compiled = json.loads((bundle / "model.json").read_text())["unet"]["compiled"]
    assert compiled["reused"] == "unet.pt2" and compiled["compile_seconds"] == 0.0
    assert (bundle / "unet.pt2").read_bytes() == (sd1_aoti / "unet.pt2").read_bytes()
    assert str(tmp_path) not in (bundle / "model.json").read_text()  # the path is recorded by name only
    assert_renders_diffusers_frames_through_the_package(sd1, sdinterp, bundle, tmp_path / "f")
    # Both packages brought back: the decoder's is added beside the UNet's, each verified.
    proc = run_exporter_cli(sd1.folder, bundle, "--add-aoti", "--aoti-reuse", sd1_aoti / "unet.pt2", "--aoti-vae",
                            "--aoti-vae-reuse", sd1_aoti / "vae_decoder.pt2")
    assert "added unet.pt2 and vae_decoder.pt2" in proc.stderr, proc.stderr[-2000:]
    after = json.loads((bundle / "model.json").read_text())
    assert after["vae"]["compiled"]["reused"] == "vae_decoder.pt2"
    assert after["export"]["verification"]["modules"]["vae_decoder_aoti"]["ok"]
    assert (bundle / "vae_decoder.pt2").read_bytes() == (sd1_aoti / "vae_decoder.pt2").read_bytes()
    assert_renders_diffusers_frames_through_the_package(sd1, sdinterp, bundle, tmp_path / "g")
    assert decode_calls(tmp_path / "g") == {"aoti": 1, "torchscript": 0}


def test_cpu_package_is_not_used_with_another_thread_count(tiny_aoti, sdinterp, tmp_path):
    import os

    threads = json.loads((tiny_aoti / "model.json").read_text())["unet"]["compiled"]["threads"]
    assert threads >= 1
    if threads == 1:
        pytest.skip("compiled on one thread: LibTorch does not run on more threads than cores")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sdinterp, "generate", "--bundle", tiny_aoti, "--prompt", "a cat", "--seed", 1, "--frames", 2, "--steps", 2,
            "-q", "--progress", "none"]
    why = f"compiled to run on {threads} CPU threads, this run has 1"
    proc = subprocess.run([*map(str, base), "--png-dir", str(tmp_path / "a")], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and why in proc.stderr and "the UNet runs from TorchScript" in proc.stderr, proc.stderr
    assert unet_calls(tmp_path / "a") == {"aoti": 0, "torchscript": 2}
    proc = subprocess.run([*map(str, base), "--png-dir", str(tmp_path / "b"), "--unet-engine", "aoti"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 3 and why in proc.stderr, proc.stderr


def test_package_for_weights_of_other_shapes_is_refused(tiny_aoti, sdinterp, tmp_path):
    # The package trusts the tensors it is given; model.json records the shapes it was compiled
    # for (a fingerprint), and sdinterp compares them with unet.pt's before using it.
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_aoti, bundle, symlinks=True)
    manifest = json.loads((bundle / "model.json").read_text())
    assert len(manifest["unet"]["compiled"]["weights_fnv1a64"]) == 16
    manifest["unet"]["compiled"]["weights_fnv1a64"] = "0123456789abcdef"
    (bundle / "model.json").write_text(json.dumps(manifest))
    base = ["generate", "--bundle", bundle, "--prompt", "a cat", "--seed", 1, "--frames", 2, "--steps", 2, "-q",
            "--progress", "none"]
    proc = run(sdinterp, *base, "--png-dir", tmp_path / "a", "--unet-engine", "aoti")
    assert proc.returncode == 3 and "compiled for a UNet whose weights have other shapes" in proc.stderr, proc.stderr
    proc = run(sdinterp, *base, "--png-dir", tmp_path / "b")
    assert proc.returncode == 0 and "weights have other shapes" in proc.stderr, proc.stderr
    assert unet_calls(tmp_path / "b") == {"aoti": 0, "torchscript": 2}



def test_package_compiled_for_another_dtype_is_refused(tiny_aoti, sdinterp, tmp_path):
    # A package copied from an export in another dtype (same names, same shapes: the fingerprint
    # passes) would read bfloat16 weights as float32. With user-managed constants LibTorch checks
    # only the device type; sdinterp checks each weight against the package's own dtype record.
    import shutil

    import torch

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_aoti, bundle, symlinks=True)
    for module in bundle.glob("*.pt"):
        rewrite_module(module, load_module(module).to(torch.bfloat16))
    manifest = json.loads((bundle / "model.json").read_text())
    manifest["dtype"] = "bfloat16"
    (bundle / "model.json").write_text(json.dumps(manifest))
    proc = run(sdinterp, "generate", "--bundle", bundle, "--prompt", "a cat", "--seed", 1, "--frames", 2, "--steps", 2,
               "-q", "--progress", "none", "--png-dir", tmp_path / "a", "--unet-engine", "aoti")
    assert proc.returncode == 3, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "the TorchScript UNet's weight " in proc.stderr, proc.stderr
    assert " is bfloat16, the package was compiled for float32 (not the bundle the package was compiled for" in \
        proc.stderr, proc.stderr
    assert not (tmp_path / "a").exists()


def test_weight_laid_out_otherwise_is_refused(tiny_aoti, sdinterp, tmp_path):
    # The package reads each weight's memory as the dense row-major layout it was compiled for; a
    # weight saved with other strides (same shape and dtype) would be read scrambled.
    import shutil

    import torch

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_aoti, bundle, symlinks=True)
    inline_weights(bundle)  # a weights file holds dense weights only; a format 2 unet.pt can hold any layout
    unet = torch.jit.load(str(bundle / "unet.pt"))
    name, weight = next((n, p) for n, p in unet.named_parameters() if p.dim() == 4 and p.shape[0] > 1 and p.shape[1] > 1)
    weight.data = weight.data.transpose(0, 1).contiguous().transpose(0, 1)
    (bundle / "unet.pt").unlink()
    torch.jit.save(unet, str(bundle / "unet.pt"))
    assert not dict(torch.jit.load(str(bundle / "unet.pt")).named_parameters())[name].is_contiguous()
    why = f"the TorchScript UNet's weight {name} is not laid out contiguously, as the package reads it"
    base = ["generate", "--bundle", bundle, "--prompt", "a cat", "--seed", 1, "--frames", 2, "--steps", 2, "-q",
            "--progress", "none"]
    proc = run(sdinterp, *base, "--png-dir", tmp_path / "a", "--unet-engine", "aoti")
    assert proc.returncode == 3 and why in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "a").exists()
    # TorchScript reads any layout: auto says why and renders without the package.
    proc = run(sdinterp, *base, "--png-dir", tmp_path / "b")
    assert proc.returncode == 0 and why in proc.stderr, proc.stderr
    assert unet_calls(tmp_path / "b") == {"aoti": 0, "torchscript": 2}
