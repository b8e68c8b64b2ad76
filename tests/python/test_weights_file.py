"""Format version 3 bundles: each module's weights in X.safetensors beside X.pt (scripts/bundle_weights.py),
mapped by sdinterp (src/bundle/weights_file.cpp) instead of read out of the TorchScript archive."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import torch

import tiny_sd
from bundle_weights import ALIGNMENT, PADDING_PREFIX, module_tensors, read_weights, split_weights, write_weights
from conftest import generate, inline_weights, load_module

MODULES = ("text_encoder.pt", "unet.pt", "vae_decoder.pt", "vae_encoder.pt")


def run(sdinterp: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sdinterp, *map(str, args)], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("name", MODULES)
def test_weights_files_are_safetensors_with_aligned_data(name):
    from safetensors import safe_open

    pt = tiny_sd.TINY_SD / name
    weights = pt.with_suffix(".safetensors")
    header_bytes, _ = split_weights(weights.read_bytes())
    assert (8 + len(header_bytes)) % ALIGNMENT == 0
    header = json.loads(header_bytes)
    placeholders = module_tensors(torch.jit.load(str(pt)))
    named = {k: v for k, v in header.items() if k != "__metadata__" and not k.startswith(PADDING_PREFIX)}
    assert set(named) == set(placeholders)
    assert all(e["data_offsets"][0] % ALIGNMENT == 0 for e in named.values())
    # The archive keeps no weights: every placeholder is one value, expanded to the weight's shape.
    assert all(t.untyped_storage().nbytes() <= t.element_size() for t in placeholders.values())
    assert pt.stat().st_size < weights.stat().st_size / 3
    # The safetensors library reads it, and the weights are the module's.
    with safe_open(str(weights), framework="pt") as f:
        library = {k: f.get_tensor(k) for k in f.keys() if not k.startswith(PADDING_PREFIX)}
    ours = read_weights(weights)
    assert set(library) == set(ours) == set(placeholders)
    assert all(torch.equal(library[k], ours[k]) for k in ours)
    assert any(t.abs().sum() > 0 for t in ours.values())


def test_version_2_layout_gives_the_same_frames(sdinterp, tmp_path):
    # The same modules with their weights inside the .pt files (format version 2, as bundles were
    # exported before): the frames are equal, value for value.
    inline = tmp_path / "inline"
    shutil.copytree(tiny_sd.TINY_SD, inline)
    inline_weights(inline)
    assert not list(inline.glob("*.safetensors"))
    assert json.loads((inline / "model.json").read_text())["format_version"] == 2
    args = ("--mode", "circular", "--prompt", "a cat", "--frames", 4)
    beside = generate(sdinterp, tiny_sd.TINY_SD, tmp_path / "beside", *args, "--seed", 3)
    inside = generate(sdinterp, inline, tmp_path / "inside", *args, "--seed", 3)
    assert len(beside) == len(inside) == 4
    assert all(np.array_equal(a, b) for a, b in zip(beside, inside))
    other_seed = generate(sdinterp, inline, tmp_path / "other", *args, "--seed", 4)
    assert not np.array_equal(beside[0], other_seed[0])
    meta = json.loads((tmp_path / "beside.json").read_text())["sdinterp"]["bundle"]["hashes"]["files"]
    assert {"unet.pt", "unet.safetensors", "vae_encoder.safetensors"} <= set(meta)


@pytest.mark.parametrize("spoil, message", [
    ("reshape", 'weight "m.conv_in.weight" is Float[4, 32, 3, 3], the module\'s is Float[32, 4, 3, 3]'),
    ("retype", 'weight "m.conv_in.weight" is Double[32, 4, 3, 3], the module\'s is Float[32, 4, 3, 3]'),
    ("extra", 'holds weights the module does not have, such as "m.spare"'),
    ("missing", 'has no weight "m.conv_in.weight", which the module needs'),
])
def test_weights_that_do_not_fit_the_module_are_refused(spoil, message, sdinterp, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_sd.TINY_SD, bundle)
    weights = read_weights(bundle / "unet.safetensors")
    w = weights["m.conv_in.weight"]
    if spoil == "reshape":
        weights["m.conv_in.weight"] = w.transpose(0, 1).contiguous()
    elif spoil == "retype":
        weights["m.conv_in.weight"] = w.double()
    elif spoil == "extra":
        weights["m.spare"] = torch.zeros(3)
    else:
        del weights["m.conv_in.weight"]
    write_weights(weights, bundle / "unet.safetensors", "spoilt")
    out = tmp_path / "frames"
    proc = run(sdinterp, "generate", "--bundle", bundle, "--prompt", "a cat", "--seed", 1, "--frames", 2, "--steps", 2,
               "-q", "--progress", "none", "--png-dir", out)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr
    assert f"unet.safetensors: {message} (the bundle is corrupt; re-export it)" in proc.stderr, proc.stderr
    assert not out.exists()


def test_load_module_puts_the_weights_back():
    # What tests, benchmarks and the exporter's --add-aoti read is the whole module.
    unet = load_module(tiny_sd.TINY_SD / "unet.pt")
    weights = read_weights(tiny_sd.TINY_SD / "unet.safetensors")
    assert all(torch.equal(t, weights[n]) for n, t in module_tensors(unet).items())
    g = torch.Generator().manual_seed(2)
    x, t, ctx = torch.randn(2, 4, 8, 8, generator=g), torch.tensor([5.0, 600.0]), torch.randn(2, 77, 32, generator=g)
    with torch.no_grad():
        assert float(unet(x, t, ctx).abs().mean()) > 1e-3
        assert not torch.equal(unet(x, t, ctx), torch.jit.load(str(tiny_sd.TINY_SD / "unet.pt"))(x, t, ctx))


def test_safetensors_from_elsewhere_need_no_padding(tmp_path):
    # Weights written by the safetensors library (no alignment gaps) read the same.
    from safetensors.torch import save_file

    tensors = {"a": torch.arange(3, dtype=torch.float16), "b": torch.ones(2, 2, dtype=torch.float32)}
    save_file(tensors, str(tmp_path / "w.safetensors"))
    back = read_weights(tmp_path / "w.safetensors")
    assert set(back) == {"a", "b"} and all(torch.equal(back[k], tensors[k]) for k in tensors)

