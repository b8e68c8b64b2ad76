"""Nothing lost, nothing half-written, under real faults: a full disk (RLIMIT_FSIZE) at several
points of a run, signals at every phase, clashes known before rendering, any bytes in a prompt or
path, a batch with jobs that fail in every way, many random kills of a batch, and a bundle's
weights file cut short or written over under a run.

Each case runs the sdinterp binary on tiny-sd as a user would. "Visible" means a name that does
not start with a dot: temporaries are hidden (".NAME.tmp-XXXXXX") and removed by the next run.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import xxhash

import tiny_sd

BUNDLE = str(tiny_sd.TINY_SD)


def visible(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not any(
        part.startswith(".") for part in p.relative_to(folder).parts))


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def file_size_limit(kib: int):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (kib * 1024, kib * 1024))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
    return limit


def sdinterp_run(sdinterp: str, cwd: Path, *args, limit=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sdinterp, *map(str, args)], cwd=cwd, capture_output=True, text=False, timeout=timeout,
                          preexec_fn=limit)


def generate_args(*extra, steps: int = 1) -> list[str]:
    return ["generate", "--bundle", BUNDLE, "--prompt", "a fox", "--seed", "5", "--steps", str(steps), *map(str, extra)]


# -------------------------------------------------------------------------------------------------
# A full disk

@pytest.mark.parametrize("case", [
    # (outputs, file size limit in KiB): the first frame, a frame in the middle of an animation, the
    # metadata after every output was written (a tiny GIF, then 11 KiB of metadata).
    (["--png-dir", "frames", "--frames", 4], 4),
    (["-o", "walk.gif", "--frames", 12], 24),
    (["-o", "walk.webp", "--frames", 12], 24),
    (["-o", "walk.mp4", "--frames", 12, "--width", 256, "--height", 256], 24),
    (["-o", "walk.gif", "--png-dir", "frames", "--frames", 2, "--width", 16, "--height", 16], 6),
], ids=["first-png-frame", "gif-middle", "webp", "mp4", "metadata-after-outputs"])
def test_a_full_disk_leaves_nothing_and_says_so(case, sdinterp, tmp_path):
    outputs, kib = case
    proc = sdinterp_run(sdinterp, tmp_path, *generate_args(*outputs), limit=file_size_limit(kib))
    err = proc.stderr.decode()
    assert proc.returncode == 4, err
    assert err.strip().splitlines()[-1].startswith("sdinterp: error: cannot "), err
    assert "File too large" in err or "free disk space" in err, err
    assert visible(tmp_path) == [] and hidden(tmp_path) == [], (visible(tmp_path), hidden(tmp_path))
    # Without the limit the same command writes everything.
    assert sdinterp_run(sdinterp, tmp_path, *generate_args(*outputs)).returncode == 0
    assert visible(tmp_path)


def test_encode_on_a_full_disk_fails_and_leaves_nothing(sdinterp, tmp_path):
    assert sdinterp_run(sdinterp, tmp_path, *generate_args("--png-dir", "in", "--frames", 6)).returncode == 0
    frames = sorted(str(p) for p in (tmp_path / "in").glob("frame_*.png"))
    (tmp_path / "small").mkdir()
    proc = sdinterp_run(sdinterp, tmp_path, "encode", *frames, "-o", "small/dir/", limit=file_size_limit(8))
    assert proc.returncode == 4, proc.stderr
    assert visible(tmp_path / "small") == [] and hidden(tmp_path / "small") == []


# -------------------------------------------------------------------------------------------------
# Signals

def start_walk(sdinterp: str, cwd: Path, size: int = 128) -> subprocess.Popen:
    return subprocess.Popen([sdinterp, *generate_args("--frames", 30, "--width", size, "--height", size,
                                                       "-o", "late.mp4", "--png-dir", "lateframes",
                                                       "--progress", "json", steps=3)],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_step(proc: subprocess.Popen) -> None:
    for line in proc.stdout:
        if json.loads(line)["event"] == "step":
            return
    pytest.fail("no step event: " + proc.stderr.read())


@pytest.mark.parametrize("phase", ["load", "start", "step", "frame", "last-frame"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_at_any_phase_stops_the_run(phase, signum, sdinterp, tmp_path):
    proc = start_walk(sdinterp, tmp_path)
    if phase == "load":
        time.sleep(0.1)
    else:
        for line in proc.stdout:
            event = json.loads(line)
            if event["event"] == phase or (phase == "last-frame" and event["event"] == "frame"
                                           and event["frames_done"] == event["frames_total"]):
                break
        else:
            pytest.fail(f"no {phase} event")
    sent = time.monotonic()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    if phase == "last-frame" and proc.returncode == 0:
        # The signal came after the last check, while the outputs were being published: then
        # they are all there, whole.
        assert sorted(visible(tmp_path))[:2] == ["late.mp4", "late.mp4.json"] and hidden(tmp_path) == []
        assert len(list((tmp_path / "lateframes").glob("frame_*.png"))) == 30
        return
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "sdinterp: error: interrupted", err
    assert took < 5, f"stopped {took:.1f} s after the signal"
    assert visible(tmp_path) == [] and hidden(tmp_path) == [], (visible(tmp_path), hidden(tmp_path))


def test_a_second_signal_ends_at_once_and_removes_the_temporaries(sdinterp, tmp_path):
    proc = start_walk(sdinterp, tmp_path, size=256)
    wait_for_step(proc)
    # Both during the next model call (a second); two of one kind could merge into one delivery.
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted again: stopping now" in err
    assert visible(tmp_path) == [] and hidden(tmp_path) == [], (visible(tmp_path), hidden(tmp_path))


def test_a_closed_output_pipe_stops_the_run_and_removes_the_temporaries(sdinterp, tmp_path):
    """`sdinterp ... --progress json | head -1`: the reader goes, the next event raises SIGPIPE, which
    stops the run as an interruption (by default it ended the process, leaving its temporaries)."""
    proc = start_walk(sdinterp, tmp_path)
    wait_for_step(proc)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, err
    assert err.strip().splitlines()[-1] == "sdinterp: error: interrupted", err
    assert visible(tmp_path) == [] and hidden(tmp_path) == [], (visible(tmp_path), hidden(tmp_path))
    # A caller that ignores SIGPIPE (nohup-style) gets a whole run: writes to the pipe just fail.
    proc = subprocess.Popen([sdinterp, *generate_args("--frames", 3, "-o", "whole.gif", "--progress", "json")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGPIPE, signal.SIG_IGN))
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, err
    assert visible(tmp_path) == ["whole.gif", "whole.gif.json"] and hidden(tmp_path) == []


def test_a_killed_runs_temporaries_are_removed_by_the_next_run(sdinterp, tmp_path):
    proc = start_walk(sdinterp, tmp_path)
    for line in proc.stdout:
        if json.loads(line)["event"] == "frame":
            break
    proc.kill()
    proc.communicate(timeout=30)
    assert visible(tmp_path) == [] and len(hidden(tmp_path)) == 2, hidden(tmp_path)
    args = generate_args("--frames", 2, "-o", "late.mp4", "--png-dir", "lateframes")
    proc = sdinterp_run(sdinterp, tmp_path, *args)
    assert proc.returncode == 0, proc.stderr
    assert b"removed temporaries an interrupted run left" in proc.stderr
    assert hidden(tmp_path) == [] and "late.mp4" in visible(tmp_path)


@pytest.mark.parametrize("signum, words", [(signal.SIGSEGV, "segmentation fault"), (signal.SIGBUS, "bus error")],
                         ids=["SIGSEGV", "SIGBUS"])
def test_a_crash_is_one_line_and_the_call_stack(signum, words, sdinterp, tmp_path):
    # Sent from outside (as a crash would arrive, minus the cause): not a file cut short, so reported
    # as the internal error it would be, exit 1, with the temporaries left to the next run.
    proc = start_walk(sdinterp, tmp_path)
    wait_for_step(proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert f"sdinterp: internal error: {words} (a bug: please report it with the command line and this stack)" in err
    assert visible(tmp_path) == []


# -------------------------------------------------------------------------------------------------
# A bundle changed under a run (its weights files are mapped, and read on the CPU throughout)

def walk_on(sdinterp: str, bundle: Path, cwd: Path, *outputs) -> subprocess.Popen:
    """A 30-frame walk on `bundle`, printing JSON progress on stdout (about 4 s on 2 cores)."""
    args = ["generate", "--bundle", str(bundle), "--prompt", "a fox", "--seed", "5", "--steps", "40",
            "--frames", "30", "--progress", "json", *map(str, outputs)]
    return subprocess.Popen([sdinterp, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_a_weights_file_cut_short_under_a_run_is_named_and_nothing_is_written(sdinterp, tmp_path):
    bundle = tmp_path / "model"
    shutil.copytree(BUNDLE, bundle)
    (tmp_path / "out").mkdir()
    proc = walk_on(sdinterp, bundle, tmp_path / "out", "-o", "walk.gif", "--png-dir", "frames")
    wait_for_step(proc)
    weights = bundle / "unet.safetensors"
    os.truncate(weights, weights.stat().st_size // 2)  # what `cp new old` does first
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert err.strip().splitlines()[-1] == (
        f"sdinterp: error: {weights} was cut short while this run read it, so the run stopped and wrote nothing "
        "(replace a bundle's files by renaming new ones into place, not by writing over them)"), err
    assert visible(tmp_path / "out") == [] and hidden(tmp_path / "out") == [], hidden(tmp_path / "out")


def test_a_bundle_written_over_under_a_run_fails_the_job_and_the_next_job_loads_it_again(sdinterp, tmp_path):
    bundle = tmp_path / "model"
    shutil.copytree(BUNDLE, bundle)
    weights = bundle / "vae_decoder.safetensors"
    proc = walk_on(sdinterp, bundle, tmp_path, "-o", "walk.gif")
    wait_for_step(proc)
    weights.write_bytes(weights.read_bytes())  # the same bytes, written over in place
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert err.strip().splitlines()[-1] == (
        "sdinterp: error: the bundle's files changed while this job used them (vae_decoder.safetensors): its frames "
        "may mix old and new weights and its metadata may not record the files it used, so nothing was written; "
        "run it again"), err
    assert visible(tmp_path) == ["model"] + [f"model/{p}" for p in visible(bundle)]
    # In a batch: the job during which the bundle changed fails; the next one loads the bundle as it
    # is now (one load more) and runs.
    job = {"bundle": str(bundle), "prompt": "a fox", "seed": 5, "steps": 40, "frames": 30}
    (tmp_path / "jobs.jsonl").write_text("".join(json.dumps({**job, "output": f"{n}.gif"}) + "\n"
                                                 for n in ("first", "second")))
    proc = subprocess.Popen([sdinterp, "batch", "jobs.jsonl", "--progress", "json"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_step(proc)
    weights.write_bytes(weights.read_bytes())
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 6, err
    assert "jobs.jsonl:1:" in err and "changed while this job used them (vae_decoder.safetensors)" in err, err
    assert "second.gif" in visible(tmp_path) and "first.gif" not in visible(tmp_path)
    assert json.loads((tmp_path / "second.gif.json").read_text())["sdinterp"]["bundle"]["hashes"]["files"][
        "vae_decoder.safetensors"] == xxhash.xxh64(weights.read_bytes()).hexdigest()


# -------------------------------------------------------------------------------------------------
# Clashes known before rendering

def test_clashing_outputs_are_refused_before_rendering(sdinterp, tmp_path):
    assert sdinterp_run(sdinterp, tmp_path, *generate_args("--frames", 3, "-o", "walk.gif", "--png-dir", "walk"),
                        ).returncode == 0
    assert sdinterp_run(sdinterp, tmp_path, *generate_args("--frames", 2, "--png-dir", "still")).returncode == 0
    before = visible(tmp_path)
    cases = [
        (["run", "walk.gif.json", "-o", "again.gif"], 4, "--png-dir walk already holds frames"),
        # Every output exists: the ones named are said, before their metadata.
        (["run", "walk.gif.json"], 4, "output walk.gif already exists"),
        (["run", "still.json"], 4, "--png-dir still already holds frames"),
        (generate_args("-o", "two.gif", "--png-dir", "walk"), 4, "--png-dir walk already holds frames"),
        (generate_args("-o", "x.gif", "--png-dir", "x.gif"), 2, "name the same path"),
        # Written otherwise, before either exists: this one rendered, then failed to publish (exit 4).
        (generate_args("-o", "z.gif", "--png-dir", "./z.gif/"), 2, "name the same path"),
        (generate_args("-o", "y.gif", "--png-dir", "y.gif.json"), 2, "is also where the run's metadata goes"),
        (generate_args("-o", "walk.gif"), 4, "already exists; pass --overwrite"),
    ]
    for args, status, words in cases:
        proc = sdinterp_run(sdinterp, tmp_path, *args)
        err = proc.stderr.decode()
        assert proc.returncode == status, (args, err)
        assert len(err.strip().splitlines()) == 1 and words in err, (args, err)
        assert visible(tmp_path) == before and hidden(tmp_path) == [], args
    # The README's re-run recipe with a frames folder of its own.
    proc = sdinterp_run(sdinterp, tmp_path, "run", "walk.gif.json", "-o", "again.gif", "--png-dir", "again")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "again.gif").read_bytes() == (tmp_path / "walk.gif").read_bytes()


def test_two_jobs_of_a_batch_on_one_output_are_refused_whatever_the_shard(sdinterp, tmp_path):
    good = {"bundle": BUNDLE, "prompt": "a fox", "seed": 1, "frames": 2, "steps": 1}
    lines = [json.dumps({**good, "output": "a.gif"}),
             json.dumps({**good, "seed": 2, "output": "./a.gif"}),  # the same file, written otherwise
             json.dumps({**good, "png-dir": "frames"}),
             json.dumps({**good, "output": "b.gif", "png-dir": "frames/"}),
             json.dumps({**good, "output": "c.gif"})]
    (tmp_path / "jobs.jsonl").write_text("\n".join(lines) + "\n")
    twice = {2: "jobs.jsonl:2: output ./a.gif is written by jobs.jsonl:1 too; give each job its own outputs",
             4: "jobs.jsonl:4: --png-dir frames/ is written by jobs.jsonl:3 too; give each job its own outputs"}
    # Shard 1 of 2 runs job lines 1 and 3 (file lines 2 and 4): both refused, though their first
    # writers belong to shard 0. Nothing written, no error record over the other job's.
    proc = sdinterp_run(sdinterp, tmp_path, "batch", "jobs.jsonl", "--shard", "1/2")
    err = proc.stderr.decode()
    assert proc.returncode == 6, err
    assert [line for line in err.splitlines() if line.startswith("sdinterp: error:")] == [
        f"sdinterp: error: {twice[2]}", f"sdinterp: error: {twice[4]}"], err
    assert visible(tmp_path) == ["jobs.jsonl"] and hidden(tmp_path) == []
    proc = sdinterp_run(sdinterp, tmp_path, "batch", "jobs.jsonl", "--shard", "0/2", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "a.gif").exists() and (tmp_path / "frames" / "frame_0001.png").exists()
    # --status says the same, each message once: the line is not named twice.
    proc = sdinterp_run(sdinterp, tmp_path, "batch", "jobs.jsonl", "--status")
    out = proc.stdout.decode()
    assert proc.returncode == 6, out
    assert f"invalid jobs.jsonl:2: {twice[2].removeprefix('jobs.jsonl:2: ')}\n" in out, out
    assert out.count("jobs.jsonl:4") == 1 and "status: 3 done, 0 missing, 0 failed, 2 invalid, of 5 jobs" in out, out


# -------------------------------------------------------------------------------------------------
# Any bytes

def test_any_bytes_in_prompts_and_paths_render_and_rerun(sdinterp, tmp_path):
    out = b"latin1-caf\xe9.gif"
    proc = subprocess.run([sdinterp.encode(), b"generate", b"--bundle", BUNDLE.encode(), b"--prompt", b"bad \xff\xfe utf8",
                           b"--negative", b"neg \xc3", b"--seed", b"3", b"--frames", b"2", b"--steps", b"1", b"-o", out],
                          cwd=tmp_path, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    gif = tmp_path / os.fsdecode(out)
    meta = json.loads((tmp_path / os.fsdecode(out + b".json")).read_text())
    assert meta["prompt"] == [{"bytes": b"bad \xff\xfe utf8".hex()}]
    assert meta["negative"] == [{"bytes": b"neg \xc3".hex()}]
    assert meta["output"] == {"bytes": out.hex()}
    # The metadata repeats the run (its output name included, here moved aside first).
    gif.rename(tmp_path / "first.gif")
    (tmp_path / os.fsdecode(out + b".json")).rename(tmp_path / "first.json")
    proc = sdinterp_run(sdinterp, tmp_path, "run", "first.json")
    assert proc.returncode == 0, proc.stderr
    assert gif.read_bytes() == (tmp_path / "first.gif").read_bytes()
    # The prompt's bytes reach the tokenizer as U+FFFD, as the tokenize command shows: same frames as that text.
    proc = sdinterp_run(sdinterp, tmp_path, *generate_args("--frames", 2, "-o", "replaced.gif"))
    assert proc.returncode == 0


def test_a_job_file_that_is_not_utf8_says_how_to_write_bytes(sdinterp, tmp_path):
    (tmp_path / "jobs.jsonl").write_bytes(b'{"bundle": "' + BUNDLE.encode() + b'", "prompt": "caf\xe9", "output": "a.gif"}\n')
    proc = sdinterp_run(sdinterp, tmp_path, "batch", "jobs.jsonl")
    assert proc.returncode == 6
    assert b'jobs.jsonl:1: not UTF-8 (JSON is UTF-8: write a text of other bytes as {"bytes": HEX})' in proc.stderr


def test_an_input_image_replaced_under_an_image_morph_fails_the_job(sdinterp, tmp_path):
    """The metadata records the images' hashes taken before the walk reads them: an image replaced
    after that fails the job (exit 4, nothing written), as a changed bundle file does."""
    from PIL import Image

    for k, colour in enumerate(((200, 40, 40), (40, 40, 200))):
        Image.new("RGB", (64, 64), colour).save(tmp_path / f"in{k}.png")
    args = ["generate", "--bundle", BUNDLE, "--mode", "image-morph", "--image", "in0.png", "--image", "in1.png",
            "--prompt", "a fox", "--seed", "5", "--steps", "40", "--frames", "30", "--progress", "json",
            "-o", "morph.gif"]
    proc = subprocess.Popen([sdinterp, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    wait_for_step(proc)
    Image.new("RGB", (64, 64), (40, 200, 40)).save(tmp_path / "in1.png")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err
    assert err.strip().splitlines()[-1] == (
        "sdinterp: error: the images changed while this job used them (in1.png): its frames may not be the "
        "recorded images', so nothing was written; run it again"), err
    assert visible(tmp_path) == ["in0.png", "in1.png"] and hidden(tmp_path) == []


# -------------------------------------------------------------------------------------------------
# A batch goes on whatever one job meets

def test_a_batch_goes_on_past_every_kind_of_failure(sdinterp, tmp_path):
    broken = tmp_path / "broken-bundle"  # loads, but fails when run: the VAE decoder as the UNet
    shutil.copytree(BUNDLE, broken)
    shutil.copy(broken / "vae_decoder.pt", broken / "unet.pt")
    shutil.copy(broken / "vae_decoder.safetensors", broken / "unet.safetensors")  # its weights beside it
    (tmp_path / "taken.gif").write_bytes(b"not ours")
    good = {"bundle": BUNDLE, "prompt": "a fox", "seed": 1, "frames": 2, "steps": 1}
    lines = [
        json.dumps({**good, "output": "one.gif"}),
        '{"bundle": "x", "prompt": ',  # not JSON
        json.dumps({**good, "bundle": str(tmp_path / "nowhere"), "output": "missing.gif"}),
        json.dumps({**good, "bundle": str(broken), "output": "broken.gif"}),
        json.dumps({**good, "output": "taken.gif"}),
        json.dumps({**good, "frames": 1, "output": "bad-value.gif"}),
        json.dumps({**good, "output": "two.gif"}),
    ]
    (tmp_path / "jobs.jsonl").write_text("\n".join(lines) + "\n")
    proc = sdinterp_run(sdinterp, tmp_path, "batch", "jobs.jsonl")
    err = proc.stderr.decode()
    assert proc.returncode == 6, err
    for line_number, words in ((2, "not valid JSON"), (3, "bundle folder not found"),
                               (4, "the model failed while running"), (5, "taken.gif already exists"),
                               (6, "--frames takes a whole number")):
        # Every job's error names its line alike, whether met reading, planning or running it.
        assert f"sdinterp: error: jobs.jsonl:{line_number}:" in err and words in err, (line_number, err)
    assert b"batch: 2 done, 0 skipped, 5 failed" in proc.stdout
    assert {"one.gif", "two.gif", "one.gif.json", "two.gif.json"} <= set(visible(tmp_path))
    assert not {"broken.gif", "missing.gif", "bad-value.gif", "broken.gif.json"} & set(visible(tmp_path))
    assert (tmp_path / "taken.gif").read_bytes() == b"not ours"


# -------------------------------------------------------------------------------------------------
# Random kills

KILLS = 50
JOBS = 6


def job_lines() -> list[dict]:
    return [{"bundle": BUNDLE, "prompt": f"walk {i}", "seed": 100 + i, "frames": 3 + i % 3, "steps": 2,
             "output": f"job{i}.gif", **({"png-dir": f"job{i}-frames"} if i % 2 else {})} for i in range(JOBS)]


def job_part(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k != "sdinterp"}


def check_invariant(folder: Path, reference: Path) -> int:
    """Every visible output is whole and the reference's, with its metadata; returns the jobs done."""
    done = 0
    names = set(visible(folder))
    for job in job_lines():
        out, frames = job["output"], job.get("png-dir")
        outputs = [out in names] + ([frames in names] if frames else [])
        publishing = (folder / f".{out}.json.publishing").exists()
        # Every visible output has its metadata beside it; the metadata without all its outputs
        # only while a killed run's publish marker says so (the next run removes them).
        if any(outputs):
            assert f"{out}.json" in names, f"{out}: an output without its metadata: {sorted(names)}"
        if not publishing:
            assert all(outputs) == (f"{out}.json" in names) and (all(outputs) or not any(outputs)), \
                f"{out}: a job's outputs appear together or not at all: {sorted(names)}"
        if not any(outputs):
            continue
        if out in names:
            assert (folder / out).read_bytes() == (reference / out).read_bytes(), out
        if publishing or not all(outputs):
            continue
        done += 1
        assert (folder / out).read_bytes() == (reference / out).read_bytes(), out
        if frames:
            ours = sorted(p.name for p in (folder / frames).iterdir())
            assert ours == sorted(p.name for p in (reference / frames).iterdir()), frames
            for name in ours:
                assert (folder / frames / name).read_bytes() == (reference / frames / name).read_bytes()
        meta = json.loads((folder / f"{out}.json").read_text())
        assert job_part(meta) == job_part(json.loads((reference / f"{out}.json").read_text())), out
    return done


def test_random_kills_never_leave_a_partial_output(sdinterp, tmp_path):
    reference, work = tmp_path / "reference", tmp_path / "work"
    reference.mkdir()
    work.mkdir()
    text = "\n".join(json.dumps(j) for j in job_lines()) + "\n"
    (reference / "jobs.jsonl").write_text(text)
    started = time.monotonic()
    assert sdinterp_run(sdinterp, reference, "batch", "jobs.jsonl", "-q").returncode == 0
    whole_batch = time.monotonic() - started
    rng = random.Random(2026)
    kills = 0
    while kills < KILLS:
        (work / "jobs.jsonl").write_text(text)
        proc = subprocess.Popen([sdinterp, "batch", "jobs.jsonl", "--skip-existing", "-q"], cwd=work,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0, whole_batch))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kills % 2 == 0 else signal.SIGTERM)
            kills += 1
        _, err = proc.communicate(timeout=120)
        assert proc.returncode in (0, 130, -signal.SIGKILL), err
        if check_invariant(work, reference) == JOBS:
            for item in work.iterdir():  # the set is complete: start it again
                shutil.rmtree(item) if item.is_dir() else item.unlink()
    # A --skip-existing run completes the set and clears what the kills left hidden.
    (work / "jobs.jsonl").write_text(text)
    proc = sdinterp_run(sdinterp, work, "batch", "jobs.jsonl", "--skip-existing", "-q", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert check_invariant(work, reference) == JOBS
    assert hidden(work) == []
    assert all(not p.name.startswith(".") for d in work.iterdir() if d.is_dir() for p in d.iterdir())


def test_a_publish_cut_short_is_undone_by_the_next_run(sdinterp, tmp_path):
    # A run killed between publishing the metadata and its last output: the marker lists them.
    args = generate_args("--frames", 2, "-o", "walk.gif", "--png-dir", "walk")
    assert sdinterp_run(sdinterp, tmp_path, *args).returncode == 0
    shutil.rmtree(tmp_path / "walk")  # as if the frames folder had not been published yet
    (tmp_path / ".walk.gif.json.publishing").write_text(json.dumps(
        {"metadata": "walk.gif.json", "files": ["walk.gif"], "frames": [{"dir": "walk", "existed": False, "frames": 2}]}))
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"bundle": BUNDLE, "prompt": "a fox", "seed": 5, "steps": 1, "frames": 2,
                                "output": "walk.gif", "png-dir": "walk"}) + "\n")
    proc = sdinterp_run(sdinterp, tmp_path, "batch", "jobs.jsonl", "--skip-existing")
    assert proc.returncode == 0, proc.stderr
    assert b"batch: 1 done, 0 skipped" in proc.stdout, proc.stdout
    assert b"killed while publishing" in proc.stderr
    assert sorted(visible(tmp_path)) == ["jobs.jsonl", "walk", "walk.gif", "walk.gif.json", "walk/frame_0000.png",
                                         "walk/frame_0001.png"]
    assert hidden(tmp_path) == []


def test_running_out_of_memory_on_the_cpu_is_exit_5(sdinterp, tmp_path):
    # LibTorch's CPU allocator fails with a plain error, not the OutOfMemoryError CUDA's throws; it
    # is the same case for the user: exit 5, one line, nothing written. The address-space limit makes
    # the 34 GB attention matrix of a 2048x2048 frame fail on any machine.
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (16 << 30, 16 << 30))

    proc = subprocess.run([sdinterp, "generate", "--bundle", BUNDLE, "--prompt", "a fox",
                           "--seed", "1", "--frames", "2", "--batch", "2", "--steps", "1", "--height", "2048",
                           "--width", "2048", "-o", "big.gif"], cwd=tmp_path, capture_output=True, text=True,
                          preexec_fn=limit, timeout=120)
    assert proc.returncode == 5, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sdinterp: error: out of memory: DefaultCPUAllocator: can't allocate")
    assert lines[0].endswith("(try a smaller --batch or a smaller --height/--width)")
    assert visible(tmp_path) == [] and hidden(tmp_path) == []
