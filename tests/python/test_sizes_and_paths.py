"""Every size diffusers takes (each side a multiple of 8) renders and equals diffusers, on tiny-sd and
on an SD 1.x-shaped model whose UNet downsamples by 8 as SD 1.5's does; and no bundle, committed or
freshly exported, carries a path of the machine that made it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import tiny_sd
from bundle_weights import split_weights
from conftest import assert_frame_matches, generate, reference_image

# (height, width): neither a multiple of tiny-sd's 16 px nor of SD 1.x's 64 px steps.
SIZES = [(40, 56), (64, 56)]
PROMPT, NEGATIVE, SEED = "a lighthouse on a cliff at dawn", "blurry", 31


@pytest.fixture(scope="session")
def tiny_sd_pipeline():
    return tiny_sd.rebuild_pipeline()


def prompt_walk(sdinterp: str, bundle: Path, out: Path, height: int, width: int):
    # A prompt walk with step size 0: each frame is diffusers' image of the seed's latent.
    return generate(sdinterp, bundle, out, "--mode", "prompt-walk", "--prompt", PROMPT, "--negative", NEGATIVE,
                    "--seed", SEED, "--frames", 2, "--step-size", 0, "--height", height, "--width", width)


@pytest.mark.parametrize("height,width", SIZES, ids=[f"{w}x{h}" for h, w in SIZES])
def test_tiny_sd_renders_every_multiple_of_8(height, width, tiny_sd_pipeline, sdinterp, tmp_path):
    frames = prompt_walk(sdinterp, tiny_sd.TINY_SD, tmp_path / "walk", height, width)
    reference = reference_image(tiny_sd_pipeline, PROMPT, NEGATIVE, SEED, height, width)
    assert frames[0].shape == (height, width, 3)
    for i, frame in enumerate(frames):
        assert_frame_matches(frame, reference, f"tiny-sd {width}x{height} frame {i}")


@pytest.mark.parametrize("height,width", SIZES + [(72, 64)], ids=[f"{w}x{h}" for h, w in SIZES + [(72, 64)]])
def test_sd1_with_a_down_factor_of_8_renders_every_multiple_of_8(height, width, sd1_deep, sdinterp, tmp_path):
    assert json.loads((sd1_deep.bundle / "model.json").read_text())["unet"]["latent_multiple"] == 1
    frames = prompt_walk(sdinterp, sd1_deep.bundle, tmp_path / "walk", height, width)
    reference = sd1_deep.reference(PROMPT, NEGATIVE, SEED, height, width)
    for i, frame in enumerate(frames):
        assert_frame_matches(frame, reference, f"sd1-deep {width}x{height} frame {i}")


def test_a_wrong_size_fails_the_comparison(tiny_sd_pipeline, sdinterp, tmp_path):
    # The comparison above can fail: the same frames against the reference of another seed.
    frames = prompt_walk(sdinterp, tiny_sd.TINY_SD, tmp_path / "walk", 40, 56)
    with pytest.raises(AssertionError, match="sdinterp - diffusers"):
        assert_frame_matches(frames[0], reference_image(tiny_sd_pipeline, PROMPT, NEGATIVE, SEED + 1, 40, 56), "x")


# A path of this machine: an absolute path into a folder tree, or a .py file named with its folders.
ABSOLUTE_PATH = re.compile(rb"(?<![\w.~-])/(?:[\w.+-]+/)+[\w.+-]+|[\w.+-]+/[\w.+-]+\.py\b")


def archive_problems(pt: Path, machine_paths: list[bytes]) -> list[str]:
    """What in a TorchScript archive names a file of the machine that wrote it: debug records,
    absolute paths or source file paths in any record but the tensor data, and this machine's own
    folders anywhere (tensor data included)."""
    import zipfile

    problems = []
    with zipfile.ZipFile(pt) as archive:
        for name in archive.namelist():
            data = archive.read(name)
            record = name.split("/", 1)[1]
            if record.endswith(".debug_pkl"):
                problems.append(f"{pt.name}: debug record {record}")
                continue
            if not record.startswith(("data/", "constants/", "traced_inputs/")):
                problems += [f"{pt.name}: {record}: {m.group().decode(errors='replace')}"
                             for m in ABSOLUTE_PATH.finditer(data)]
            problems += [f"{pt.name}: {record}: names {p.decode()}" for p in machine_paths if p in data]
    return problems


def manifest_problems(manifest: Path, machine_paths: list[bytes]) -> list[str]:
    return json_problems(manifest, manifest.read_bytes(), machine_paths)


def weights_problems(weights: Path, machine_paths: list[bytes]) -> list[str]:
    """A weights file's JSON header (tensor names, metadata); its data are scanned for this machine's folders."""
    header, tensor_data = split_weights(weights.read_bytes())
    return json_problems(weights, header, machine_paths) + [f"{weights}: names {p.decode()} in its data"
                                                            for p in machine_paths if p in tensor_data]


def json_problems(where: Path, text: bytes, machine_paths: list[bytes]) -> list[str]:
    found = [p.decode() for p in machine_paths if p in text]
    strings = re.findall(rb'"(/[^"]*)"', text)
    return [f"{where}: names {p}" for p in found] + [f"{where}: absolute path {s.decode()}" for s in strings]


def file_problems(f: Path, paths: list[bytes]) -> list[str]:
    checks = {".json": manifest_problems, ".safetensors": weights_problems}
    return checks.get(f.suffix, archive_problems)(f, paths)


def machine_paths(*more: Path) -> list[bytes]:
    import sys

    import torch

    places = [tiny_sd.REPO, Path(torch.__file__).parent, Path(sys.prefix), Path.home(), *more]
    return sorted({str(p.resolve()).encode() for p in places if len(str(p.resolve())) > 1})


def test_no_committed_archive_names_a_path_of_the_machine(tmp_path):
    import subprocess

    tracked = subprocess.run(["git", "ls-files", "*.pt", "*.pt2", "*.safetensors", "*/model.json"], cwd=tiny_sd.REPO,
                             capture_output=True, text=True, check=True).stdout.split()
    files = [tiny_sd.REPO / f for f in tracked] if tracked else [
        *tiny_sd.TINY_SD.glob("*.pt"), *tiny_sd.TINY_SD.glob("*.safetensors"), tiny_sd.TINY_SD / "model.json"]
    assert tiny_sd.TINY_SD / "unet.pt" in files and tiny_sd.TINY_SD / "unet.safetensors" in files
    paths = machine_paths(tmp_path)
    problems = [p for f in files for p in file_problems(f, paths)]
    assert not problems, "\n".join(problems[:20])


def test_fresh_export_names_no_path_of_the_machine(sd1, workdir):
    paths = machine_paths(workdir, sd1.folder)
    files = sorted([*sd1.bundle.glob("*.pt"), *sd1.bundle.glob("*.safetensors"), sd1.bundle / "model.json"])
    assert sd1.bundle / "unet.safetensors" in files
    problems = [p for f in files for p in file_problems(f, paths)]
    assert not problems, "\n".join(problems[:20])


def test_the_scan_finds_debug_records_and_paths(tmp_path):
    # The scan can fail: a module saved by plain torch.jit.save keeps its debug records, which name
    # this test file by its absolute path.
    import torch

    traced = torch.jit.trace(torch.nn.Linear(2, 2), torch.zeros(1, 2))
    torch.jit.save(traced, str(tmp_path / "plain.pt"))
    problems = archive_problems(tmp_path / "plain.pt", machine_paths())
    assert any("debug record" in p for p in problems), problems
    assert archive_problems_with_path(tmp_path, machine_paths(tmp_path))


def archive_problems_with_path(folder: Path, paths: list[bytes]) -> list[str]:
    # A record holding a path of this machine is found even outside the debug records.
    import zipfile

    pt = folder / "with-path.pt"
    with zipfile.ZipFile(pt, "w") as archive:
        archive.writestr("m/code/__torch__.py", f"# written at {folder}/module.py\n")
    return archive_problems(pt, paths)


def test_a_failure_inside_torchscript_is_one_line(sdinterp, tmp_path):
    # A UNet traced at a multiple of its down factor (as version 1 bundles were) behind a manifest
    # that claims every size: LibTorch fails inside the TorchScript graph at 56x40. The user gets
    # one line with LibTorch's error, exit status 3, nothing written; the traceback on request.
    import os
    import subprocess

    import torch

    from conftest import load_exporter

    bundle, out = tmp_path / "traced-at-a-multiple", tmp_path / "out"
    bundle.mkdir()
    out.mkdir()
    for item in tiny_sd.TINY_SD.iterdir():
        if item.name != "unet.pt":
            os.symlink(item, bundle / item.name)
    exporter = load_exporter()
    unet = exporter.make_wrappers()[1](tiny_sd.rebuild_unet()).eval()
    g = torch.Generator().manual_seed(1)
    inputs = (torch.randn(2, 4, 8, 8, generator=g), torch.tensor([999.0, 1.0]), torch.randn(2, 77, 32, generator=g))
    with torch.no_grad():
        exporter.save_without_debug_records(torch.jit.trace(unet, inputs, check_trace=False), bundle / "unet.pt")
    cmd = [sdinterp, "generate", "--bundle", str(bundle), "--prompt", "x", "--seed", "1", "--frames", "2", "--steps", "1",
           "--width", "56", "--height", "40", "-o", str(out / "a.gif")]

    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 3, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("sdinterp: error: the model failed while running"), lines[0]
    assert "RuntimeError: Sizes of tensors must match" in lines[0] and "--verbose" in lines[0], lines[0]
    assert not list(out.iterdir())

    for extra, env in ((["--verbose"], {}), ([], {"SDINTERP_VERBOSE": "1"})):
        proc = subprocess.run(cmd + extra, capture_output=True, text=True, timeout=120, env={**os.environ, **env})
        assert proc.returncode == 3
        assert "Traceback of TorchScript" in proc.stderr, proc.stderr
        assert proc.stderr.splitlines()[-1].startswith("sdinterp: error: the model failed while running")
        assert not list(out.iterdir())
    # 0 is off; a value that is no switch was taken as on ("false" too): now refused before any work.
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "SDINTERP_VERBOSE": "0"})
    assert proc.returncode == 3 and "Traceback of TorchScript" not in proc.stderr, proc.stderr
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SDINTERP_VERBOSE": "false"})
    assert proc.returncode == 2 and proc.stderr == (
        "sdinterp: error: SDINTERP_VERBOSE is 'false': use 0 or 1 (or leave it unset)\n"), proc.stderr
    assert not list(out.iterdir())
