"""SD 2.x-shaped random pipeline (v_prediction, pad id 0, per-level heads, linear projections, a larger
native size): export, then sdinterp reads every field and draws what diffusers draws."""

import json
import subprocess

from conftest import assert_frame_matches, generate


def test_manifest_records_v_prediction_pad_and_size(sd2):
    m = json.loads((sd2.bundle / "model.json").read_text())
    assert m["noise_schedule"]["prediction_type"] == "v_prediction"
    assert m["tokenizer"]["pad_id"] == 0 and m["tokenizer"]["eos_id"] == 49407
    assert m["unet"]["sample_size"] == 12 and m["vae"]["scale_factor"] == 8  # native 96 (SD 2.x: 96 * 8 = 768)
    assert m["text_encoder"]["hidden_size"] == 48 == m["unet"]["cross_attention_dim"]


def test_tokenizer_pads_with_zero(sd2, sdinterp):
    texts = ["a photo of a cat", "", "Straße über café 😀 " * 3]
    proc = subprocess.run([sdinterp, "tokenize", "--bundle", str(sd2.bundle), *texts], capture_output=True, text=True,
                          check=True)
    ours = [json.loads(line)["ids"] for line in proc.stdout.splitlines()]
    want = sd2.pipe.tokenizer(texts, padding="max_length", max_length=77, truncation=True).input_ids
    assert ours == want
    assert ours[0][-1] == 0 and ours[0].count(49407) == 1


def test_native_size_frames_equal_diffusers(sd2, sdinterp, tmp_path):
    # No --height/--width: the bundle's native size, sample_size * scale_factor = 96.
    prompt, seed = "an astronaut riding a horse", 7
    frames = generate(sdinterp, sd2.bundle, tmp_path / "walk", "--mode", "prompt-walk", "--prompt", prompt,
                      "--seed", seed, "--frames", 2, "--step-size", 0)
    assert frames[0].shape == (96, 96, 3)
    for i, frame in enumerate(frames):
        assert_frame_matches(frame, sd2.reference(prompt, "", seed, 96, 96), f"frame {i}")
