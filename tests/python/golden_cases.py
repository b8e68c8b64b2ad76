"""The notebook's four examples on tiny-sd (tests/golden/pipeline_cases.json) as sdinterp arguments,
their golden frames, and the golden tolerance on 8-bit frames. No pytest here: bench/gpu_compare.py
uses it on the GPU machine too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
CASES = json.loads((GOLDEN / "pipeline_cases.json").read_text())["cases"]


def golden_frames(case: dict) -> np.ndarray:
    """diffusers' frames for the case: float32 [N, H, W, 3] in [0, 1]."""
    data = np.fromfile(GOLDEN / case["frames_file"], dtype="<f4")
    return data.reshape(case["frames_shape"])


def case_args(case: dict) -> list[str]:
    """sdinterp generate arguments for the case's walk (mode, seed, size, prompts); steps and guidance
    are sampling_args(case)."""
    args = ["--mode", case["mode"], "--seed", case["seed"], "--frames", case["frames"],
            "--height", case["height"], "--width", case["width"]]
    for p in case["prompts"]:
        args += ["--prompt", p]
    for n in case["negative_prompts"]:
        args += ["--negative", n]
    if "step_size" in case:
        args += ["--step-size", case["step_size"]]
    return [str(a) for a in args]


def sampling_args(case: dict) -> list[str]:
    return ["--steps", str(case["steps"]), "--guidance", f"{case['guidance_scale']:g}"]


def to_8bit(frames: np.ndarray) -> np.ndarray:
    """diffusers' float frames in [0, 1] as the 8-bit values a PNG of them holds, round(255 x), as int16
    (so that differences can be taken)."""
    return np.round(255.0 * np.clip(frames, 0.0, 1.0)).astype(np.int16)


def embed_texts(pipe, texts: list[str], device: str = "cpu"):
    """The pipeline's text embeddings of `texts` in one encoder call, [len(texts), 77, d], tokenized as
    StableDiffusionPipeline does; one call for the prompts and one for the negative prompts is how the
    notebook and diffusers' encode_prompt batch them (and sdinterp: the encoder's roundings depend on
    the batch)."""
    import torch

    ids = pipe.tokenizer(list(texts), padding="max_length", max_length=77, truncation=True,
                         return_tensors="pt").input_ids
    with torch.no_grad():
        return pipe.text_encoder(ids.to(device))[0]


def embed_text(pipe, text: str, device: str = "cpu"):
    """embed_texts of one text: [1, 77, d]."""
    return embed_texts(pipe, [text], device)


def frame_agreement(ours: np.ndarray, reference: np.ndarray) -> dict:
    """An 8-bit frame against diffusers' float frame: the golden tolerance is |ours - round(255 x)| <= 1
    with at least 99.9% of values equal; the reference must be a real picture of noise (not flat or
    mostly saturated) for the comparison to mean anything."""
    ref = to_8bit(reference)
    if ours.shape != ref.shape:
        return {"ok": False, "problem": f"shape {ours.shape} != diffusers {ref.shape}"}
    diff = np.abs(ours.astype(np.int16) - ref)
    equal = float((diff == 0).mean())
    saturated = float(((ref == 0) | (ref == 255)).mean())
    result = {"max_diff": int(diff.max()), "equal": equal, "ok": bool(diff.max() <= 1 and equal >= 0.999)}
    if not (ref.std() > 8 and saturated < 0.5):
        result.update(ok=False, problem=f"degenerate reference (std {ref.std():.1f}, {saturated:.0%} saturated)")
    return result


def notebook_slerp(t: float, v0, v1, dot_threshold: float = 0.9995):
    """The notebook's slerp over whole tensors (torch), lerp for nearly parallel inputs."""
    import math

    a, b = v0.double().flatten(), v1.double().flatten()
    dot = float((a * b).sum() / (a.norm() * b.norm()))
    if abs(dot) > dot_threshold:
        return (1 - t) * v0 + t * v1
    theta_0 = math.acos(dot)
    theta_t = theta_0 * t
    return (math.sin(theta_0 - theta_t) / math.sin(theta_0)) * v0 + (math.sin(theta_t) / math.sin(theta_0)) * v1


def diffusers_case_frames(pipe, case: dict, device: str = "cpu", batch: int = 1,
                          decode_chunk: int | None = None) -> np.ndarray:
    """diffusers' own frames of a golden case on `device`: the notebook's four walks (golden README)
    driven through `pipe` (tiny_sd.rebuild_pipeline(), float32) from the case's stored latents,
    `batch` frames a pipeline call (the notebook's one, or as sdinterp --batch renders them), each
    call's latents decoded together or, with `decode_chunk`, that many at a time as sdinterp decodes
    them (a call's last, shorter chunk filled up with its last latent) and as the pipeline decodes
    (its VAE, then its image processor). Float32 [N, H, W, 3] in [0, 1], as golden_frames(case)."""
    import math

    import torch

    latents = torch.from_numpy(np.fromfile(GOLDEN / case["latents_file"], dtype="<f4")
                               .reshape(case["latents_shape"]).copy())
    prompts = case["prompts"]

    frames = case["frames"]
    calls = []  # (prompt embeddings, negative embeddings, latents) per frame
    with torch.inference_mode():
        positive = list(embed_texts(pipe, prompts, device).split(1))
        negative = list(embed_texts(pipe, case["negative_prompts"], device).split(1))
        if len(negative) == 1:
            negative = negative * len(prompts)
        if case["mode"] == "prompt-walk":
            step = case["step_size"]
            calls = [(positive[0] + step * i, negative[0] + step * i, latents) for i in range(frames)]
        elif case["mode"] == "slerp-latent":
            calls = [(positive[0], negative[0], notebook_slerp(float(t), latents[0:1], latents[1:2]).float())
                     for t in np.linspace(0, 1, frames)]
        elif case["mode"] == "multi-prompt":
            for j in range(len(prompts) - 1):
                for t in np.linspace(0, 1, frames):
                    calls.append((notebook_slerp(float(t), positive[j], positive[j + 1]).float(),
                                  notebook_slerp(float(t), negative[j], negative[j + 1]).float(), latents))
        elif case["mode"] == "circular":
            # The notebook's angles are float32 tensors: cos and sin of torch.linspace(0, 2, n) * pi.
            angles = torch.linspace(0, 2, frames) * math.pi
            for x, y in zip(torch.cos(angles), torch.sin(angles)):
                calls.append((positive[0], negative[0], x * latents[0] + y * latents[1]))
        else:
            raise ValueError(f"unknown golden mode {case['mode']}")
        out = []
        for first in range(0, len(calls), batch):
            chunk = calls[first:first + batch]
            images = pipe(prompt_embeds=torch.cat([c[0] for c in chunk]),
                          negative_prompt_embeds=torch.cat([c[1] for c in chunk]),
                          latents=torch.cat([c[2] for c in chunk]).to(device), num_inference_steps=case["steps"],
                          guidance_scale=case["guidance_scale"], height=case["height"], width=case["width"],
                          output_type="np" if decode_chunk is None else "latent").images
            if decode_chunk is not None:
                decoded = []
                for part in images.split(decode_chunk):
                    n = part.shape[0]
                    if n < decode_chunk < images.shape[0]:
                        part = torch.cat([part, part[-1:].expand(decode_chunk - n, -1, -1, -1)])
                    image = pipe.vae.decode(part / pipe.vae.config.scaling_factor, return_dict=False)[0]
                    decoded.append(pipe.image_processor.postprocess(image, output_type="np")[:n])
                images = np.concatenate(decoded)
            out.extend(images)
    return np.stack(out)
