"""A bundle's module files (format version 3): X.pt holds the TorchScript code with a one-value
placeholder for every parameter and buffer, and X.safetensors beside it holds the weights, each
tensor's data aligned to 256 bytes (the gaps are U8 tensors named sdinterp.padding.N, so the file
stays a valid safetensors file). sdinterp maps X.safetensors and uses the weights in place on the
CPU, or copies them to the device in one piece; it never reads them into a buffer of its own
(src/bundle/weights_header.cpp parses the header, weights_file.cpp maps the file). Format version 2
bundles keep the weights inside X.pt.

The exporter writes modules with save_module; tests, the benchmarks and the exporter's own checks
read any bundle's module with load_module."""

from __future__ import annotations

import json
import struct
from pathlib import Path

WEIGHTS_SUFFIX = ".safetensors"
ALIGNMENT = 256
PADDING_PREFIX = "sdinterp.padding."
# torch dtype name -> safetensors dtype; src/bundle/weights_header.cpp reads the same names.
DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64", "int64": "I64",
          "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


def weights_path(module_path: Path) -> Path:
    return Path(module_path).with_suffix(WEIGHTS_SUFFIX)


def module_tensors(module) -> dict:
    """Every parameter and buffer of a TorchScript module by its full name, in the module's order."""
    return {**dict(module.named_parameters()), **dict(module.named_buffers())}


def write_weights(tensors: dict, path: Path, describes: str) -> None:
    """Writes tensors (name -> tensor) as a safetensors file whose tensor data start at multiples of
    ALIGNMENT from the start of the file."""
    import torch

    entries, order, offset = {}, [], 0
    for name, t in tensors.items():
        if name.startswith(PADDING_PREFIX):
            raise ValueError(f"{name}: the prefix {PADDING_PREFIX} is reserved for padding")
        dtype = str(t.dtype).replace("torch.", "")
        if dtype not in DTYPES:
            raise ValueError(f"{name}: dtype {dtype} has no safetensors name here")
        gap = -offset % ALIGNMENT
        if gap:
            pad = f"{PADDING_PREFIX}{len(order)}"
            entries[pad] = {"dtype": "U8", "shape": [gap], "data_offsets": [offset, offset + gap]}
            order.append((pad, gap))
            offset += gap
        size = t.numel() * t.element_size()
        entries[name] = {"dtype": DTYPES[dtype], "shape": list(t.shape), "data_offsets": [offset, offset + size]}
        order.append((name, size))
        offset += size
    header = json.dumps({"__metadata__": {"format": "pt", "sdinterp": describes}, **entries},
                        separators=(",", ":")).encode()
    header += b" " * (-(8 + len(header)) % ALIGNMENT)  # spaces, as the format allows: data start aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)))
        f.write(header)
        for name, size in order:
            if name.startswith(PADDING_PREFIX):
                f.write(bytes(size))
            elif size:
                t = tensors[name].detach().to("cpu").contiguous()
                f.write(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def split_weights(data: bytes) -> tuple[bytes, bytes]:
    """A weights file's bytes as its JSON header (spaces included) and its tensor data."""
    (length,) = struct.unpack("<Q", data[:8])
    return data[8:8 + length], data[8 + length:]


def read_weights(path: Path) -> dict:
    """name -> CPU tensor of a weights file, padding left out."""
    import torch

    header_bytes, tensor_data = split_weights(Path(path).read_bytes())
    header = json.loads(header_bytes)
    by_name = {v: k for k, v in DTYPES.items()}
    out = {}
    for name, e in header.items():
        if name == "__metadata__" or name.startswith(PADDING_PREFIX):
            continue
        b, end = e["data_offsets"]
        dtype = getattr(torch, by_name[e["dtype"]])
        raw = torch.frombuffer(bytearray(tensor_data[b:end]), dtype=torch.uint8) if end > b else \
            torch.empty(0, dtype=torch.uint8)
        out[name] = raw.view(dtype).reshape(e["shape"])
    return out


def save_module(module, path: Path, save) -> None:
    """Saves a TorchScript module as PATH (code, placeholders) and PATH's weights file. save(module,
    path) writes an archive (the exporter's writer without debug records). module is left as it was:
    the placeholders go into a copy read back from the first, whole archive."""
    import torch

    save(module, Path(path))
    copy = torch.jit.load(str(path), map_location=None)
    tensors = module_tensors(copy)
    write_weights(tensors, weights_path(path), f"weights of {Path(path).name}")
    with torch.no_grad():
        for t in tensors.values():
            # One value, expanded: the archive keeps the shape, dtype and device, not the data.
            t.data = torch.zeros((), dtype=t.dtype, device=t.device).expand(t.shape)
    save(copy, Path(path))


def load_module(path: Path, map_location=None):
    """torch.jit.load of a bundle's module file, with its weights put back when they are beside it."""
    import torch

    module = torch.jit.load(str(path), map_location=map_location)
    beside = weights_path(path)
    if beside.is_file():
        weights = read_weights(beside)
        with torch.no_grad():
            for name, t in module_tensors(module).items():
                t.data = weights[name].to(t.device)
    return module


def inline_weights(bundle: Path) -> None:
    """Turns a format version 3 bundle into the version 2 layout: each module's weights back inside its
    .pt file, no weights files (for comparisons: tests, bench/bundle_load.py)."""
    import torch

    bundle = Path(bundle)
    for pt in sorted(bundle.glob("*.pt")):
        module = load_module(pt)
        pt.unlink()  # a link (tests copy bundles with links to models/tiny-sd) is replaced, not written through
        torch.jit.save(module, str(pt))
        weights_path(pt).unlink()
    manifest = json.loads((bundle / "model.json").read_text())
    manifest["format_version"] = 2
    (bundle / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
