"""sdinterp for scripts and terminals, through the binary: the --progress json event stream of
generate, run and batch (success, failure, interruption), the bar on a narrow terminal, job files
that say where they are wrong, options that fit the format, run metadata that re-runs from any
folder, and --seamless-loop. On tiny-sd, a few frames and steps each.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import termios
from pathlib import Path

import numpy as np
import pytest
import xxhash
from PIL import Image

import tiny_sd

BUNDLE = str(tiny_sd.TINY_SD)
SCHEMA = 1
PROGRESS_EVENTS = {"start", "step", "frame", "encode", "done"}


def run(sdinterp: str, cwd: Path, *args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([sdinterp, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def job(**keys) -> dict:
    return {"bundle": BUNDLE, "prompt": "a fox", "seed": 5, "frames": 3, "steps": 1, **keys}


def events_of(stdout: str) -> list[dict]:
    """Every stdout line parsed as JSON (a line that is not fails the test), each checked for the
    fields every event has."""
    lines = stdout.splitlines()
    assert lines, "no stdout at all"
    events = []
    for line in lines:
        event = json.loads(line)  # raises on anything that is not JSON
        assert isinstance(event, dict), line
        assert event["schema"] == SCHEMA, line
        assert isinstance(event["event"], str), line
        if event["event"] != "summary":
            assert set(event["job"]) == {"source", "line", "output", "png_dir"}, line
        events.append(event)
    return events


def check_progress(events: list[dict]) -> None:
    """The progress events of one job: counts that only grow, an ETA that is never 0 before the end
    (decoding and encoding are still to come), and done as the last one."""
    progress = [e for e in events if e["event"] in PROGRESS_EVENTS]
    assert [e["event"] for e in progress][0] == "start"
    assert progress[-1]["event"] == "done" and progress[-1]["eta_s"] == 0
    assert "encode" in [e["event"] for e in progress]
    for before, after in zip(progress, progress[1:]):
        assert after["unet_calls_done"] >= before["unet_calls_done"]
        assert after["frames_done"] >= before["frames_done"]
    for e in progress[:-1]:
        assert e["eta_s"] is None or e["eta_s"] > 0, e
    assert progress[-1]["frames_done"] == progress[-1]["frames_total"]
    assert progress[-1]["unet_calls_done"] == progress[-1]["unet_calls_total"]


# -------------------------------------------------------------------------------------------------
# --progress json: stdout is JSON lines only


def test_generate_json_events_name_the_job_and_end_with_the_result(sdinterp, tmp_path):
    proc = run(sdinterp, tmp_path, "generate", "--bundle", BUNDLE, "--prompt", "a fox", "--seed", 5, "--frames", 4,
               "--steps", 2, "--batch", 2, "-o", "a.gif", "--progress", "json")
    assert proc.returncode == 0, proc.stderr
    events = events_of(proc.stdout)
    check_progress(events)
    result = events[-1]
    assert result["event"] == "result"
    assert result["job"] == {"source": "command line", "line": None, "output": "a.gif", "png_dir": None}
    assert result["frames"] == 4 and result["seed"] == 5 and result["metadata"] == "a.gif.json"
    assert [o["path"] for o in result["outputs"]] == ["a.gif"]
    assert all(e["job"]["output"] == "a.gif" for e in events)


def test_generate_json_failure_is_an_error_event(sdinterp, tmp_path):
    proc = run(sdinterp, tmp_path, "generate", "--bundle", BUNDLE, "--prompt", "a", "--prompt", "b", "-o", "a.gif",
               "--progress", "json")
    assert proc.returncode == 2
    (event,) = events_of(proc.stdout)
    assert event["event"] == "error" and event["exit_code"] == 2
    assert "needs exactly 1 --prompt" in event["message"]
    assert "sdinterp: error:" in proc.stderr  # the line for people stays on stderr


def test_run_json_success_and_failure(sdinterp, tmp_path):
    (tmp_path / "job.json").write_text(json.dumps(job(output="r.gif")))
    proc = run(sdinterp, tmp_path, "run", "job.json", "--progress", "json")
    assert proc.returncode == 0, proc.stderr
    events = events_of(proc.stdout)
    check_progress(events)
    assert events[-1]["event"] == "result" and events[-1]["job"]["source"] == "job.json"
    proc = run(sdinterp, tmp_path, "run", "job.json", "--progress", "json")  # r.gif exists now
    assert proc.returncode == 4
    (event,) = events_of(proc.stdout)
    assert event["event"] == "error" and event["exit_code"] == 4 and "already exists" in event["message"]


def test_batch_json_events_carry_line_and_output_and_a_summary(sdinterp, tmp_path):
    lines = [json.dumps(job(output="a.gif")), "# a comment line", json.dumps(job(output="b.gif", frames=0)),
             '{"bundle": "x" "prompt": 1}', json.dumps(job(output="taken.gif"))]
    (tmp_path / "jobs.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "taken.gif").write_bytes(b"not the batch's")  # line 5: an existing output, exit status 4
    proc = run(sdinterp, tmp_path, "batch", "jobs.jsonl", "--progress", "json")
    assert proc.returncode == 6, proc.stderr
    events = events_of(proc.stdout)
    results = [e for e in events if e["event"] == "result"]
    errors = [e for e in events if e["event"] == "error"]
    assert [(e["job"]["line"], e["job"]["output"]) for e in results] == [(1, "a.gif")]
    assert [(e["job"]["line"], e["job"]["output"], e["exit_code"]) for e in errors] == [
        (3, "b.gif", 2), (4, None, 2), (5, "taken.gif", 4)]
    assert all(e["job"]["source"] == "jobs.jsonl" for e in events if "job" in e)
    check_progress([e for e in events if e.get("job", {}).get("line") == 1])
    summary = events[-1]
    assert summary["event"] == "summary"
    assert (summary["done"], summary["skipped"], summary["failed"], summary["interrupted"], summary["exit_code"]) == (
        1, 0, 3, False, 6)
    # --skip-existing: a "skipped" event, not a text line.
    proc = run(sdinterp, tmp_path, "batch", "jobs.jsonl", "--progress", "json", "--skip-existing")
    events = events_of(proc.stdout)
    assert [(e["job"]["line"], e["reason"]) for e in events if e["event"] == "skipped"] == [(1, "already done")]
    assert [e["job"]["line"] for e in events if e["event"] == "error"] == [3, 4, 5]


def test_jobs_piped_in_on_standard_input(sdinterp, tmp_path):
    """`batch -` and `run -` read standard input, as `make-jobs | sdinterp batch -`; messages, events and
    error records name the lines /dev/stdin:N; run metadata piped in takes its paths from the working
    directory."""
    def piped(text: str, *args) -> subprocess.CompletedProcess:
        return subprocess.run([sdinterp, *map(str, args)], cwd=tmp_path, input=text, capture_output=True, text=True,
                              timeout=180)

    # The bundle given relative: the metadata records it relative to its own folder, here the working one.
    (tmp_path / "model").symlink_to(BUNDLE)
    lines = [json.dumps(job(output="a.gif", bundle="model")),
             json.dumps(job(output="b.gif", frames=0))]
    proc = piped("\n".join(lines) + "\n", "batch", "-", "--progress", "json")
    assert proc.returncode == 6, proc.stderr
    events = events_of(proc.stdout)
    assert [e["job"]["line"] for e in events if e["event"] == "result"] == [1]
    (error,) = [e for e in events if e["event"] == "error"]
    assert error["job"] == {"source": "/dev/stdin", "line": 2, "output": "b.gif", "png_dir": None}
    assert json.loads((tmp_path / "b.gif.error.json").read_text())["source"] == "/dev/stdin:2"
    assert (tmp_path / "a.gif").is_file() and not (tmp_path / "b.gif").exists()
    status = piped(lines[0] + "\n", "batch", "-", "--status")
    assert status.returncode == 0 and "done    /dev/stdin:1  a.gif" in status.stdout, status.stdout + status.stderr
    # run -: a job, and run metadata (its paths are the working directory's, where a.gif.json is).
    proc = piped(json.dumps(job(output="c.gif")), "run", "-", "-q")
    assert proc.returncode == 0 and (tmp_path / "c.gif").is_file(), proc.stderr
    proc = piped((tmp_path / "a.gif.json").read_text(), "run", "-", "-o", "again.gif", "-q")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "again.gif").read_bytes() == (tmp_path / "a.gif").read_bytes()
    proc = piped("{", "run", "-")
    assert proc.returncode == 2 and proc.stderr.startswith("sdinterp: error: /dev/stdin:1:"), proc.stderr


def interrupt_after_first_step(sdinterp, cwd, *args) -> tuple[int, str]:
    proc = subprocess.Popen([sdinterp, *map(str, args)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    out = []
    for line in proc.stdout:
        out.append(line)
        if json.loads(line)["event"] == "step":
            proc.send_signal(signal.SIGINT)
            break
    out.extend(proc.stdout.readlines())
    return proc.wait(timeout=120), "".join(out)


def test_interrupted_generate_and_batch_end_with_an_interrupted_event(sdinterp, tmp_path):
    rc, out = interrupt_after_first_step(sdinterp, tmp_path, "generate", "--bundle", BUNDLE, "--prompt", "a fox",
                                         "--seed", 1, "--frames", 40, "--steps", 50, "--batch", 1, "-o", "a.gif",
                                         "--progress", "json")
    assert rc == 130
    events = events_of(out)
    assert events[-1]["event"] == "interrupted" and events[-1]["exit_code"] == 130
    assert events[-1]["job"]["output"] == "a.gif"
    assert not (tmp_path / "a.gif").exists()

    (tmp_path / "job.json").write_text(json.dumps(job(output="r.gif", frames=40, steps=50, batch=1)))
    rc, out = interrupt_after_first_step(sdinterp, tmp_path, "run", "job.json", "--progress", "json")
    assert rc == 130
    events = events_of(out)
    assert events[-1]["event"] == "interrupted" and events[-1]["job"]["source"] == "job.json"
    assert not (tmp_path / "r.gif").exists()

    (tmp_path / "jobs.jsonl").write_text(json.dumps(job(output="b.gif", frames=40, steps=50, batch=1)) + "\n")
    rc, out = interrupt_after_first_step(sdinterp, tmp_path, "batch", "jobs.jsonl", "--progress", "json")
    assert rc == 130
    events = events_of(out)
    assert [e["event"] for e in events[-2:]] == ["interrupted", "summary"]
    assert events[-2]["job"]["line"] == 1
    assert events[-1]["interrupted"] is True and events[-1]["exit_code"] == 130


# -------------------------------------------------------------------------------------------------
# The bar on a terminal


def set_columns(fd: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))


def test_the_bar_fits_a_narrow_terminal_and_follows_a_resize(sdinterp, tmp_path):
    master, slave = pty.openpty()
    set_columns(slave, 60)
    proc = subprocess.Popen([sdinterp, "generate", "--bundle", BUNDLE, "--prompt", "a fox", "--seed", "1", "--frames",
                             "6", "--steps", "8", "--batch", "1", "-o", "a.gif", "--progress", "bar"],
                            cwd=tmp_path, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    output, resized_at = b"", None
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
        if resized_at is None and output.count(b"\r") >= 10:
            set_columns(master, 40)
            resized_at = len(output)
    assert proc.wait(timeout=60) == 0
    os.close(master)
    text = output.decode()
    assert "wrote GIF a.gif" in text
    bar = text[:text.index("wrote GIF")]
    # Redrawn in place: one line of bar in the scrollback, never a wrapped one.
    assert bar.count("\n") <= 2, repr(bar)
    draws = [re.sub(r"\x1b\[K", "", d).strip("\n") for d in re.split(r"\r", bar) if d.strip()]
    assert len(draws) > 10
    assert max(len(d) for d in draws) <= 59, max(draws, key=len)
    assert resized_at is not None
    after = [re.sub(r"\x1b\[K", "", d).strip("\n") for d in re.split(r"\r", output[resized_at:].decode()) if d.strip()]
    after = [d for d in after if d.startswith("[")]
    assert after and len(after[-1]) <= 39, after[-1]


# -------------------------------------------------------------------------------------------------
# Job files that say where they are wrong


def test_a_syntax_error_names_line_and_column(sdinterp, tmp_path):
    (tmp_path / "bad.json").write_text('{\n  "bundle": "m",\n  "prompt": "a"\n  "frames": 3\n}\n')
    proc = run(sdinterp, tmp_path, "run", "bad.json")
    assert proc.returncode == 2
    assert re.search(r"bad\.json:4:\d+: not valid JSON: .*unexpected string literal", proc.stderr), proc.stderr
    (tmp_path / "empty.json").write_text("\n")
    proc = run(sdinterp, tmp_path, "run", "empty.json")
    assert proc.returncode == 2 and "empty.json: empty; a job is one JSON object" in proc.stderr
    # In a batch the line is the file's, the column the line's; no prefix twice.
    (tmp_path / "jobs.jsonl").write_text(json.dumps(job(output="a.gif")) + '\n{"bundle": "x" "prompt": 1}\n')
    proc = run(sdinterp, tmp_path, "batch", "jobs.jsonl", "--progress", "none")
    assert proc.returncode == 6
    assert "sdinterp: error: jobs.jsonl:2:23: not valid JSON" in proc.stderr, proc.stderr
    assert proc.stderr.count("jobs.jsonl:2") == 1


def test_a_misspelt_key_gets_the_nearest_one(sdinterp, tmp_path):
    for wrong, right in (("guidence", "guidance"), ("step_size", "step-size"), ("Frames", "frames"),
                         ("outptu", "output"), ("seamless", "seamless-loop")):
        (tmp_path / "j.json").write_text(json.dumps({**job(output="a.gif"), wrong: 1}))
        proc = run(sdinterp, tmp_path, "run", "j.json")
        assert proc.returncode == 2
        assert f'j.json: unknown key "{wrong}" (did you mean "{right}"?)' in proc.stderr, proc.stderr
    (tmp_path / "j.json").write_text(json.dumps({**job(output="a.gif"), "zzzzzzzz": 1}))
    proc = run(sdinterp, tmp_path, "run", "j.json")
    assert "keys starting with _ are comments" in proc.stderr and "did you mean" not in proc.stderr


def test_comments_in_job_files(sdinterp, tmp_path):
    text = json.dumps(job(output="a.gif", _note="made for the catalogue"), indent=1)
    text = "// a job with comments\n" + text.replace('"seed"', '/* fixed */ "seed"')
    (tmp_path / "j.json").write_text(text)
    proc = run(sdinterp, tmp_path, "run", "j.json", "--progress", "none")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((tmp_path / "a.gif.json").read_text())
    assert "_note" not in meta and meta["seed"] == 5
    # In a batch line too, and --skip-existing still knows the job.
    (tmp_path / "jobs.jsonl").write_text(json.dumps(job(output="a.gif", _why="x")) + "\n")
    proc = run(sdinterp, tmp_path, "batch", "jobs.jsonl", "--skip-existing", "--progress", "none")
    assert proc.returncode == 0 and "skipped jobs.jsonl:1: already done" in proc.stdout, proc.stdout + proc.stderr


# -------------------------------------------------------------------------------------------------
# Options that fit the format


def mp4_profile(path: Path) -> int:
    data = path.read_bytes()
    at = data.index(b"avcC")
    return data[at + 5]  # AVCProfileIndication: 100 High, 244 High 4:4:4 Predictive


def test_crf_0_is_lossless_h264(sdinterp, tmp_path):
    proc = run(sdinterp, tmp_path, "generate", "--bundle", BUNDLE, "--prompt", "a fox", "--seed", 5, "--frames", 3,
               "--steps", 1, "-o", "l.mp4", "--crf", 0, "--progress", "none")
    assert proc.returncode == 0, proc.stderr
    assert mp4_profile(tmp_path / "l.mp4") == 244
    proc = run(sdinterp, tmp_path, "generate", "--bundle", BUNDLE, "--prompt", "a fox", "--seed", 5, "--frames", 3,
               "--steps", 1, "-o", "h.mp4", "--progress", "none")
    assert mp4_profile(tmp_path / "h.mp4") == 100
    assert (tmp_path / "l.mp4").stat().st_size > (tmp_path / "h.mp4").stat().st_size
    proc = run(sdinterp, tmp_path, "generate", "--bundle", BUNDLE, "--prompt", "a fox", "-o", "x.mp4", "--crf", -1)
    assert proc.returncode == 2 and "--crf takes a whole number from 0 to 51" in proc.stderr


def test_an_option_for_another_format_is_warned_about_once(sdinterp, tmp_path):
    proc = run(sdinterp, tmp_path, "generate", "--bundle", BUNDLE, "--prompt", "a fox", "--seed", 5, "--frames", 2,
               "--steps", 1, "-o", "a.webp", "--dither", "none", "--crf", 30, "--progress", "none")
    assert proc.returncode == 0, proc.stderr
    assert "warning: --dither applies to .gif only; a.webp ignores it" in proc.stderr
    assert "warning: --crf applies to .mp4 only; a.webp ignores it" in proc.stderr
    proc = run(sdinterp, tmp_path, "generate", "--bundle", BUNDLE, "--prompt", "a fox", "--seed", 5, "--frames", 2,
               "--steps", 1, "-o", "a.gif", "--lossless", "--progress", "none")
    assert "warning: --lossless applies to .webp only; a.gif ignores it" in proc.stderr
    proc = run(sdinterp, tmp_path, "generate", "--bundle", BUNDLE, "--prompt", "a fox", "--seed", 5, "--frames", 2,
               "--steps", 1, "--png-dir", "f", "--fps", 20, "--progress", "none")
    assert "warning: --fps applies to .gif, .webp, .mp4; the PNG frames in f ignore it" in proc.stderr
    # Options every output reads, or that the output reads: no warning.
    proc = run(sdinterp, tmp_path, "generate", "--bundle", BUNDLE, "--prompt", "a fox", "--seed", 5, "--frames", 2,
               "--steps", 1, "-o", "b.webp", "--quality", 50, "--loop", 2, "--progress", "none")
    assert "warning" not in proc.stderr, proc.stderr
    # Once a batch, however many jobs.
    (tmp_path / "jobs.jsonl").write_text("".join(json.dumps(job(output=f"{i}.mp4", dither="ordered")) + "\n"
                                                 for i in range(3)))
    proc = run(sdinterp, tmp_path, "batch", "jobs.jsonl", "--progress", "none")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("--dither applies to .gif only") == 1, proc.stderr
    # encode too.
    frames = sorted(str(p) for p in (tmp_path / "f").glob("frame_*.png"))
    proc = run(sdinterp, tmp_path, "encode", *frames, "-o", "e.gif", "--quality", 10)
    assert proc.returncode == 0 and "warning: --quality applies to .webp only; e.gif ignores it" in proc.stderr


def test_a_webp_of_identical_frames_says_what_it_holds(sdinterp, tmp_path):
    proc = run(sdinterp, tmp_path, "generate", "--bundle", BUNDLE, "--prompt", "a fox", "--seed", 5, "--frames", 4,
               "--steps", 1, "--mode", "prompt-walk", "--step-size", 0, "-o", "s.webp", "--progress", "none")
    assert proc.returncode == 0, proc.stderr
    assert "WebP s.webp (4 frames, 64x64, lossy; the frames are identical: stored as one still image)" in proc.stdout
    proc = run(sdinterp, tmp_path, "generate", "--bundle", BUNDLE, "--prompt", "a fox", "--seed", 5, "--frames", 4,
               "--steps", 1, "-o", "m.webp", "--progress", "none")
    assert "WebP m.webp (4 frames, 64x64, lossy)," in proc.stdout, proc.stdout


# -------------------------------------------------------------------------------------------------
# Run metadata that re-runs anywhere


def test_metadata_reruns_from_another_folder_and_warns_about_a_changed_bundle(sdinterp, tmp_path):
    shutil.copytree(BUNDLE, tmp_path / "model")
    (tmp_path / "out").mkdir()
    proc = run(sdinterp, tmp_path, "generate", "--bundle", "model", "--prompt", "a fox", "--seed", 5, "--frames", 3,
               "--steps", 1, "-o", "out/a.gif", "--progress", "none")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((tmp_path / "out" / "a.gif.json").read_text())
    assert meta["bundle"] == "../model" and meta["output"] == "a.gif"
    elsewhere = tmp_path / "x" / "y"
    elsewhere.mkdir(parents=True)
    proc = run(sdinterp, elsewhere, "run", "../../out/a.gif.json", "-o", "again.gif", "--progress", "none")
    assert proc.returncode == 0, proc.stderr
    assert (elsewhere / "again.gif").read_bytes() == (tmp_path / "out" / "a.gif").read_bytes()
    assert "warning" not in proc.stderr
    # Without -o the sidecar's own output, found from here: it exists.
    proc = run(sdinterp, elsewhere, "run", "../../out/a.gif.json", "--progress", "none")
    assert proc.returncode == 4 and "out/a.gif already exists" in proc.stderr
    # An absolute path stays absolute.
    proc = run(sdinterp, tmp_path, "generate", "--bundle", tmp_path / "model", "--prompt", "a fox", "--seed", 5,
               "--frames", 3, "--steps", 1, "-o", "out/b.gif", "--progress", "none")
    assert json.loads((tmp_path / "out" / "b.gif.json").read_text())["bundle"] == str(tmp_path / "model")
    # A bundle whose files changed: a warning, or with --strict a refusal before any work.
    manifest = json.loads((tmp_path / "model" / "model.json").read_text())
    manifest["description"] = "edited"
    (tmp_path / "model" / "model.json").write_text(json.dumps(manifest))
    proc = run(sdinterp, elsewhere, "run", "../../out/a.gif.json", "-o", "changed.gif", "--progress", "none")
    assert proc.returncode == 0, proc.stderr
    assert "warning: the bundle's files differ from the ones the run metadata records (model.json)" in proc.stderr
    proc = run(sdinterp, elsewhere, "run", "../../out/a.gif.json", "-o", "strict.gif", "--strict", "--progress", "none")
    assert proc.returncode == 3 and "(model.json)" in proc.stderr and "--strict" in proc.stderr
    assert not (elsewhere / "strict.gif").exists()


def test_a_batch_of_run_metadata_checks_the_recorded_bundle_as_run_does(sdinterp, tmp_path):
    """Lines of run metadata (`jq -c . out/*.json > again.jsonl`) get run's check of the bundle's
    recorded hashes: a warning per job whose bundle changed, or with batch --strict that job refused
    (exit 3, the others still run)."""
    shutil.copytree(BUNDLE, tmp_path / "model")
    lines = []
    for name in ("a", "b"):
        proc = run(sdinterp, tmp_path, "generate", "--bundle", "model", "--prompt", f"a {name}", "--seed", 5,
                   "--frames", 2, "--steps", 1, "-o", f"{name}.gif", "--progress", "none")
        assert proc.returncode == 0, proc.stderr
        meta = json.loads((tmp_path / f"{name}.gif.json").read_text())
        lines.append(json.dumps({**meta, "output": f"again-{name}.gif", "overwrite": True}))
    (tmp_path / "again.jsonl").write_text("\n".join(lines) + "\n")
    proc = run(sdinterp, tmp_path, "batch", "again.jsonl", "--strict", "--progress", "none")
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
    assert (tmp_path / "again-a.gif").read_bytes() == (tmp_path / "a.gif").read_bytes()
    manifest = json.loads((tmp_path / "model" / "model.json").read_text())
    manifest["description"] = "edited"
    (tmp_path / "model" / "model.json").write_text(json.dumps(manifest))
    proc = run(sdinterp, tmp_path, "batch", "again.jsonl", "--progress", "none")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("warning: the bundle's files differ from the ones the run metadata records "
                             "(model.json)") == 2, proc.stderr
    (tmp_path / "again-b.gif").unlink()
    proc = run(sdinterp, tmp_path, "batch", "again.jsonl", "--strict", "--progress", "none")
    assert proc.returncode == 6, proc.stderr
    for line in (1, 2):
        assert f"sdinterp: error: again.jsonl:{line}: the bundle's files differ from the ones the run metadata " \
               "records (model.json); the frames would not repeat the recorded run (--strict)" in proc.stderr
    assert not (tmp_path / "again-b.gif").exists()
    # A plain job line records nothing to compare: --strict lets it run.
    (tmp_path / "plain.jsonl").write_text(json.dumps({"bundle": "model", "prompt": "a", "seed": 1, "frames": 2,
                                                      "steps": 1, "output": "plain.gif"}) + "\n")
    proc = run(sdinterp, tmp_path, "batch", "plain.jsonl", "--strict", "--progress", "none")
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def test_metadata_hashes_are_xxh64_and_older_fnv1a_metadata_is_still_checked(sdinterp, tmp_path):
    shutil.copytree(BUNDLE, tmp_path / "model")
    proc = run(sdinterp, tmp_path, "generate", "--bundle", "model", "--prompt", "a fox", "--seed", 5, "--frames", 2,
               "--steps", 1, "-o", "a.gif", "--progress", "none")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((tmp_path / "a.gif.json").read_text())
    hashes = meta["sdinterp"]["bundle"]["hashes"]
    # What `xxh64sum FILE` prints, for every file of the bundle, and the combined line list.
    assert hashes["algorithm"] == "xxh64"
    assert {"model.json", "unet.pt", "unet.safetensors", "tokenizer/vocab.json"} <= set(hashes["files"])
    for name, value in hashes["files"].items():
        assert value == xxhash.xxh64((tmp_path / "model" / name).read_bytes()).hexdigest(), name
    lines = "".join(f"{name}={value}\n" for name, value in hashes["files"].items())
    assert hashes["combined"] == xxhash.xxh64(lines.encode()).hexdigest()
    # Metadata of an sdinterp that hashed with FNV-1a: compared with FNV-1a hashes, so it runs quietly
    # when the files are the same and names the one that changed.
    hashes["algorithm"] = "fnv1a-64"
    hashes["files"] = {name: fnv1a64((tmp_path / "model" / name).read_bytes()) for name in hashes["files"]}
    (tmp_path / "old.json").write_text(json.dumps(meta))
    proc = run(sdinterp, tmp_path, "run", "old.json", "-o", "b.gif", "--strict", "--progress", "none")
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
    assert (tmp_path / "b.gif").read_bytes() == (tmp_path / "a.gif").read_bytes()
    (tmp_path / "model" / "vae_decoder.pt").write_bytes((tmp_path / "model" / "vae_decoder.pt").read_bytes() + b" ")
    proc = run(sdinterp, tmp_path, "run", "old.json", "-o", "c.gif", "--strict", "--progress", "none")
    assert proc.returncode == 3 and "records (vae_decoder.pt); the frames would not repeat" in proc.stderr, proc.stderr
    # An algorithm this build does not know: every file is called changed.
    hashes["algorithm"] = "sha3-512"
    (tmp_path / "unknown.json").write_text(json.dumps(meta))
    proc = run(sdinterp, tmp_path, "run", "unknown.json", "-o", "d.gif", "--progress", "none")
    assert proc.returncode == 0, proc.stderr
    assert "records (every file (a hash algorithm this sdinterp does not know: 'sha3-512'))" in proc.stderr


# -------------------------------------------------------------------------------------------------
# Loops that don't stutter


def frames_of(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("frame_*.png"))]


@pytest.mark.parametrize("mode, prompts", [("circular", ["a fox"]), ("multi-prompt", ["a fox", "a cat", "a fox"])])
def test_seamless_loop_leaves_out_the_repeated_end_frame(sdinterp, tmp_path, mode, prompts):
    base = ["generate", "--bundle", BUNDLE, "--mode", mode, *sum((["--prompt", p] for p in prompts), []), "--seed", 3,
            "--frames", 5, "--steps", 2, "--batch", 1, "--progress", "none"]
    assert run(sdinterp, tmp_path, *base, "--png-dir", "full").returncode == 0
    proc = run(sdinterp, tmp_path, *base, "--png-dir", "seam", "--seamless-loop")
    assert proc.returncode == 0, proc.stderr
    full, seam = frames_of(tmp_path / "full"), frames_of(tmp_path / "seam")
    assert len(seam) == len(full) - 1
    # The notebook's frames keep repeating their first at the end; the seamless loop's do not.
    assert np.array_equal(full[-1], full[0]) or np.abs(full[-1].astype(int) - full[0]).max() <= 1
    for a, b in zip(full, seam):
        assert np.array_equal(a, b)
    meta = json.loads((tmp_path / "seam.json").read_text())
    assert meta["seamless-loop"] is True and meta["sdinterp"]["frames_written"] == len(seam)


def test_seamless_loop_refuses_a_walk_whose_ends_differ(sdinterp, tmp_path):
    for extra in (["--mode", "slerp-latent", "--prompt", "a"], ["--mode", "multi-prompt", "--prompt", "a", "--prompt", "b"]):
        proc = run(sdinterp, tmp_path, "generate", "--bundle", BUNDLE, *extra, "-o", "a.gif", "--seamless-loop")
        assert proc.returncode == 2 and "--seamless-loop" in proc.stderr and "ends differ" in proc.stderr


# -------------------------------------------------------------------------------------------------
# Smaller points


def test_small_points(sdinterp, tmp_path):
    proc = run(sdinterp, tmp_path, "encode", "missing.png", "-o", "a.gif")
    assert proc.returncode == 4 and "missing.png" in proc.stderr
    proc = run(sdinterp, tmp_path, "generate", "--bundle", BUNDLE, "--prompt", "a", "-o", "outdir/")
    assert proc.returncode == 2 and "use --png-dir outdir/" in proc.stderr and "folder ending" not in proc.stderr
    proc = run(sdinterp, tmp_path, "generate", "--bundle", BUNDLE, "--prompt", "a", "--seed", "18446744073709551616")
    assert proc.returncode == 2 and "--seed takes a whole number from 0 to 18446744073709551615" in proc.stderr
    proc = run(sdinterp, tmp_path, "generate", "--bundle", BUNDLE, "--prompt", "a", "--seed", 5, "--frames", 3,
               "--steps", 1, "-o", "a.gif", "--progress", "none")
    line = proc.stdout.strip()
    assert "seed 5" in line
    assert re.fullmatch(r"wrote GIF a\.gif \(3 frames, 64x64\), seed 5, [0-9.e+-]+ s", line), line
    # Numbers as they were written, not as printf's %f would put them.
    proc = run(sdinterp, tmp_path, "generate", "--bundle", BUNDLE, "--prompt", "a", "-o", "b.gif", "--fps", 60)
    assert proc.returncode == 2 and "--fps 60 is too high" in proc.stderr and "60.0" not in proc.stderr
    (tmp_path / "j.json").write_text(json.dumps(job(output="c.gif", fps=60.5)))
    proc = run(sdinterp, tmp_path, "run", "j.json")
    assert proc.returncode == 2 and "--fps 60.5 is too high" in proc.stderr, proc.stderr
