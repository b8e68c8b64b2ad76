"""bench/gpu_compare.py, the one prepared GPU run, exercised here on the CPU: a GPU window is 15
minutes now and then, so the script must not fail there for a reason the CPU could have shown.

The smoke run covers the stages issue 13 added: row (e) (bench/diffusers_e2e.py, diffusers timed
from process start), the golden check and the CUDA float32 parity check (here on the CPU), and the
checks against issue 13's numbers; the crash triage is run on a command that dies of SIGSEGV, and on
one that crashes as sdinterp does (its handler's line, exit 1) unless a variant gets around it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import gpu_compare  # noqa: E402


@pytest.fixture(scope="module")
def smoke(sdinterp, tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("gpu-compare")
    out, work = base / "out", base / "work"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_compare.py"), "--smoke", "--device", "cpu",
                           "--skip-aoti", "--skip-notebook-loop", "--sdinterp", sdinterp, "--out", str(out),
                           "--workdir", str(work)],
                          capture_output=True, text=True, timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {"base": base, "out": out, "stdout": proc.stdout, "stderr": proc.stderr,
            "results": json.loads((out / "results.json").read_text())}


def test_smoke_run_has_every_row(smoke):
    stages = smoke["results"]["stages"]
    for key in ("b", "c", "c-warm", "c-warm-sdpa-cudnn", "e"):
        assert key in stages, f"row {key} missing: {sorted(stages)}"
    # The attention switch's row ran with it (on the CPU it changes nothing).
    assert stages["c-warm-sdpa-cudnn"]["command"].startswith("SDINTERP_SDPA_FIRST=cudnn sdinterp batch ")
    assert smoke["results"]["comparisons"]["sdinterp c-warm-sdpa-cudnn vs default"]["max_abs_diff"] == 0
    e = stages["e"]
    assert e["rc"] == 0 and e["frames_written"] == 3
    # Its phases are seconds since the script's start, in order; the parent timed the whole process.
    phases = e["phases_s"]
    assert 0 < phases["imports_s"] <= phases["load_s"] <= phases["generated_s"] <= phases["written_s"] <= e["wall_s"]
    # The script does (b)'s job: the same pipeline, saved and loaded again, gives the same first frame.
    same = smoke["results"]["comparisons"]["diffusers script (e) vs (b)"]
    assert same["max_abs_diff"] == 0


def test_smoke_run_records_the_default_engine(smoke):
    # The untimed warm-up names no engine: the smoke bundle has no compiled UNet, so TorchScript ran.
    calls = smoke["results"]["stages"]["setup"]["sdinterp_default_engine_calls"]
    assert calls["aoti"] == 0 and calls["torchscript"] > 0, calls


def test_smoke_run_checks_golden_and_parity(smoke):
    golden = smoke["results"]["stages"]["golden"]
    assert golden["ok"] is True
    parity = golden["parity"]
    # Each case at sdinterp's own batch, and one frame a call as diffusers renders them.
    cases = ["ex1_prompt_walk", "ex2_slerp_latent", "ex3_multi_prompt", "ex4_circular"]
    assert isinstance(parity, list) and sorted((r["engine"], r["case"]) for r in parity) == sorted(
        [(engine, case) for engine in ("torchscript", "torchscript-batch1") for case in cases])
    assert sorted((r["engine"], r["case"]) for r in golden["cases"]) == sorted((r["engine"], r["case"]) for r in parity)
    for row in parity:
        assert row["ours_max_diff"] <= 1 and row["diffusers_max_diff"] <= 1
        assert 0 <= row["ours_unequal"] < 0.01 and 0 <= row["diffusers_unequal"] < 0.01
        assert row["ok"] == (row["ours_unequal"] <= row["diffusers_unequal"])
        # Rendered and decoded as many frames at a time as sdinterp did, diffusers' frames are
        # sdinterp's bit for bit here (the CPU): only the batch sizes' roundings remain above.
        assert row["same_batching_unequal"] == 0, row
    criteria = [c["criterion"] for c in smoke["results"]["checks"]]
    # The criterion is judged on sdinterp's defaults; the per-frame runs are shown beside them.
    check = next(c for c in smoke["results"]["checks"] if "float32 parity on the golden cases" in c["criterion"])
    assert check["pass"] == all(r["ok"] for r in parity if r["engine"] == "torchscript")
    assert "torchscript-batch1 ex4_circular" in check["value"] and check["value"].endswith("(defaults)")
    assert any("whole command <= 1.3x its generation time" in c for c in criteria)
    assert any("faster than (e), the diffusers script end to end" in c for c in criteria)


def test_smoke_run_times_the_levers(smoke):
    """Issue 13 items 2 and 3 asked in the run: a UNet call in both layouts, with cuDNN's timed choice
    and with fused attention projections; the walk's decode eager, with cuDNN's timed choice,
    channels_last, through the compiled decoder (whose frames must be the eager ones, float32) and in
    other chunk sizes. The attention backends are CUDA's: not asked on the CPU."""
    levers = smoke["results"]["stages"]["levers"]
    assert levers["vae_compile_rc"] == 0 and levers["vae_compile_s"] > 0, levers
    for key in ("unet_call_ms_contiguous", "unet_call_ms_channels_last", "unet_call_ms_cudnn_benchmark",
                "unet_call_ms_fused_qkv", "vae_decode_s_eager", "vae_decode_s_cudnn_benchmark",
                "vae_decode_s_channels_last", "vae_decode_s_aoti"):
        assert isinstance(levers[key], float) and levers[key] > 0, (key, levers)
    assert not any(k.startswith("unet_call_ms_sdpa") for k in levers)
    chunk = smoke["results"]["stages"]["c"]["decode_chunk"]
    assert levers["unet_batch"] == 6 and levers["decode_chunk"] == chunk
    # The smoke walk has 3 frames: chunks of 5 and 10 are all of them at once, asked once unless
    # that is sdinterp's own chunk.
    other = sorted(k for k in levers if k.startswith("vae_decode_s_eager_chunk_"))
    assert other == ([] if chunk == 3 else ["vae_decode_s_eager_chunk_3"]), other
    assert levers["vae_aoti_max_abs_diff"] < 1e-4 and levers["vae_channels_last_max_abs_diff"] < 1e-4, levers
    md = (smoke["out"] / "results.md").read_text()
    assert "| unet_call_ms_fused_qkv |" in md and "| vae_decode_s_aoti |" in md
    assert (smoke["out"] / "vae_compile.log").is_file()


def test_smoke_run_runs_the_smoke_command(smoke):
    """Issue 13 item 5's command, run as a GPU runner would (here on the CPU, where it checks the
    bundled tiny-sd against the golden frames), with its verdict among the checks."""
    stage = smoke["results"]["stages"]["smoke_command"]
    assert stage["rc"] == 0 and stage["command"] == "scripts/smoke.py --device cpu", stage
    assert stage["lines"][-1] == "smoke: pass: the notebook's four examples on cpu"
    check = next(c for c in smoke["results"]["checks"] if c["criterion"].startswith("the smoke command"))
    assert check["pass"] == "True (smoke: not meaningful)" or check["pass"] is True
    assert (smoke["out"] / "smoke.log").is_file()


def test_smoke_results_name_no_machine_folder(smoke):
    for name in ("results.json", "results.md", "sdinterp.log", "vae_compile.log", "smoke.log"):
        text = (smoke["out"] / name).read_text()
        assert str(smoke["base"]) not in text, name
        assert str(REPO) not in text, name


def test_run_measures_reads_metadata_events_and_the_memory_sampler(tmp_path):
    # What a row says of an sdinterp run: its metadata's times, the load (launch to the first start
    # event), the end (last done to exit), a warm batch's first job, and the device's peak above
    # its use at launch (on a GPU only: sampled there, so pinned here).
    gib = 1 << 30
    meta = tmp_path / "x.json"
    meta.write_text(json.dumps({"batch": 30, "sdinterp": {"timings_s": {"total": 2.5}, "decode_chunk": 5}}))
    events = [(1.25, {"event": "start"}), (3.0, {"event": "done"}), (3.5, {"event": "start"}),
              (6.0, {"event": "done"})]
    memory = {"samples": 40, "peak_used_bytes": 9 * gib, "peak_process_bytes": 7 * gib,
              "baseline_used_bytes": 1.5 * gib}
    fields = gpu_compare.run_measures(meta, events, 6.25, True, memory)
    assert fields["gen_s"] == 2.5 and fields["batch"] == 30 and fields["decode_chunk"] == 5, fields
    assert fields["load_s"] == 1.25 and fields["after_last_done_s"] == 0.25 and fields["first_job_s"] == 2.25
    assert fields["peak_device_gib"] == 7.5 and fields["baseline_device_gib"] == 1.5
    assert fields["peak_process_gib"] == 7.0
    # No sampler (the CPU), no metadata: neither is made up.
    fields = gpu_compare.run_measures(tmp_path / "none.json", events[:2], 3.0, False, {"baseline_used_bytes": None})
    assert fields["note"].startswith("no metadata") and "gen_s" not in fields and "first_job_s" not in fields
    assert "peak_device_gib" not in fields and "peak_process_gib" not in fields and fields["load_s"] == 1.25
    assert gpu_compare.peak_above({"samples": 0, "peak_used_bytes": gib}, 0) is None


def test_filesystem_bindings_counts_ld_debug_lines(tmp_path):
    (tmp_path / "ld.123").write_text(
        "     123:\tbinding file /opt/torch/lib/libtorch_cpu.so [0] to /lib/x86_64-linux-gnu/libstdc++.so.6 [0]: "
        "normal symbol `_ZNSt10filesystem7__cxx114pathD1Ev' [GLIBCXX_3.4.26]\n"
        "     123:\tbinding file /opt/torch/lib/libtorch_cpu.so [0] to /lib/x86_64-linux-gnu/libstdc++.so.6 [0]: "
        "normal symbol `_ZNKSt10filesystem7__cxx114path5_List5beginEv' [GLIBCXX_3.4.26]\n"
        "     123:\tbinding file /opt/torch/lib/libtorch.so [0] to /opt/torch/lib/libtorch.so [0]: "
        "normal symbol `_ZNSt10filesystem6statusERKNS_7__cxx114pathE'\n"
        "     123:\tbinding file /opt/torch/lib/libtorch.so [0] to /lib/x86_64-linux-gnu/libc.so.6 [0]: "
        "normal symbol `malloc' [GLIBC_2.2.5]\n")
    assert gpu_compare.filesystem_bindings(tmp_path) == {"libtorch_cpu.so -> libstdc++.so.6": 2,
                                                         "libtorch.so -> libtorch.so": 1}


def bare_comparison(tmp_path: Path, *extra: str) -> gpu_compare.Comparison:
    """A CPU smoke Comparison set up as run() would leave it before its stages, for calling one of
    them alone."""
    import torch

    args = gpu_compare.parse_args(["--smoke", "--device", "cpu", "--out", str(tmp_path / "out"),
                                   "--workdir", str(tmp_path / "work"), *extra])
    comparison = gpu_compare.Comparison(args)
    comparison.torch = torch
    comparison.sampler = None  # no CUDA
    comparison.work.mkdir(parents=True)
    comparison.results["stages"]["golden"] = {}
    return comparison


def test_crash_triage_reruns_a_command_that_died(tmp_path):
    comparison = bare_comparison(tmp_path)
    comparison._crash_triage(["sh", "-c", "kill -SEGV $$"], dict(os.environ), "a command that dies")
    report = comparison.results["stages"]["golden"]["crash_triage"]
    assert [v["variant"] for v in report["variants"]] == ["preload libtorch_cpu.so", "preload libtorch.so"]
    assert all(v["rc"] == -11 and v["crashed"] for v in report["variants"])
    assert "workaround" not in report and comparison.workaround is None
    assert report["filesystem_bindings"] == {}  # sh binds no std::filesystem
    assert "preload libtorch_cpu.so: exit -11" in (tmp_path / "out" / "triage.log").read_text()
    # Once per run: a second crash is not looked at again.
    comparison._crash_triage(["sh", "-c", "exit 0"], dict(os.environ), "another")
    assert comparison.results["stages"]["golden"]["crash_triage"]["what"] == "a command that dies"


def test_crash_triage_finds_a_way_around_and_the_compiled_runs_take_it(tmp_path):
    comparison = bare_comparison(tmp_path)
    # Crashes as sdinterp does (its handler's line, exit 1) unless libtorch.so is preloaded.
    crash = ('case "$LD_PRELOAD" in */libtorch.so) exit 0;; esac; echo "sdinterp: internal error: segmentation '
             'fault (a bug: please report it with the command line and this stack)" >&2; echo "./sdinterp(+0x1d2f)" >&2;'
             ' exit 1')
    comparison._crash_triage(["sh", "-c", crash], dict(os.environ), "a compiled run")
    report = comparison.results["stages"]["golden"]["crash_triage"]
    assert [(v["rc"], v["crashed"]) for v in report["variants"]] == [(1, True), (0, False)]
    assert report["variants"][0]["last_line"].startswith("sdinterp: internal error: segmentation fault")
    assert report["workaround"] == "preload libtorch.so"
    assert comparison._sdinterp_env(compiled=True)["LD_PRELOAD"].endswith("/libtorch.so")
    assert comparison._sdinterp_env().get("LD_PRELOAD") == os.environ.get("LD_PRELOAD")
    assert any("preload libtorch.so" in n for n in comparison.results["notes"])


def test_a_real_sdinterp_crash_is_seen_as_a_crash(sdinterp, tmp_path):
    # sdinterp's crash handler exits 1 with its own line, so gpu_compare cannot wait for a death by
    # signal: the crash is sent from outside mid-walk, as in test_faults.
    proc = subprocess.Popen([sdinterp, "generate", "--bundle", str(REPO / "models" / "tiny-sd"), "--prompt", "a fox",
                             "--seed", "5", "--steps", "40", "--frames", "30", "--progress", "json", "--png-dir",
                             str(tmp_path / "frames")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if json.loads(line)["event"] == "step":
            break
    proc.send_signal(11)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and gpu_compare.crashed(proc.returncode, err), err
    assert gpu_compare.error_line(err).startswith("sdinterp: internal error: segmentation fault")
    # Other failures are not crashes: a usage error, and an internal error that is no crash.
    bad = subprocess.run([sdinterp, "generate", "--frames", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and not gpu_compare.crashed(bad.returncode, bad.stderr)
    assert not gpu_compare.crashed(1, "sdinterp: internal error: cannot load the model runtime: x\n")
    assert gpu_compare.crashed(-11, "")


@pytest.mark.parametrize("mode", ["local", "global"])
def test_each_dlopen_mode_gives_the_default_frames(mode, sdinterp, tmp_path):
    # The triage's SDINTERP_DLOPEN variants must be runs of the same program: same frames, and the
    # progress lines the runtime prints (RTLD_DEEPBIND, tried and dropped, crashed at the first one).
    def frames(name: str, extra: dict) -> list[bytes]:
        out = tmp_path / name
        subprocess.run([sdinterp, "generate", "--bundle", str(REPO / "models" / "tiny-sd"), "--prompt", "a fox",
                        "--seed", "3", "--frames", "3", "--steps", "2", "--png-dir", str(out), "-q",
                        "--progress", "json"], check=True, capture_output=True, env={**os.environ, **extra})
        return [f.read_bytes() for f in sorted(out.glob("frame_*.png"))]

    default = frames("default", {"SDINTERP_DLOPEN": ""})
    assert len(default) == 3 and frames(mode, {"SDINTERP_DLOPEN": mode}) == default


def test_an_unknown_dlopen_mode_is_refused(sdinterp, tmp_path):
    proc = subprocess.run([sdinterp, "generate", "--bundle", str(REPO / "models" / "tiny-sd"), "--prompt", "a fox",
                           "-o", str(tmp_path / "a.gif")], capture_output=True, text=True,
                          env={**os.environ, "SDINTERP_DLOPEN": "lazy"})
    assert proc.returncode == 2
    assert proc.stderr == "sdinterp: error: SDINTERP_DLOPEN is 'lazy': use global, local (or leave it unset)\n"
    assert not (tmp_path / "a.gif").exists()


def test_a_compiled_row_that_crashes_is_triaged_and_measured_again(sdinterp, tmp_path):
    # An sdinterp whose compiled-UNet runs crash unless LibTorch's libtorch_cpu.so is preloaded (the
    # engine is swapped for TorchScript underneath: tiny-sd has no package).
    fake = tmp_path / "sdinterp"
    fake.write_text("#!/usr/bin/env bash\n"
                    'if [[ "$LD_PRELOAD" != */libtorch_cpu.so ]] && [[ " $* " == *" aoti "* ]]; then\n'
                    '  echo "sdinterp: internal error: segmentation fault (a bug: please report it with the command'
                    ' line and this stack)" >&2; exit 1\nfi\n'
                    f'exec {sdinterp} "${{@/#aoti/torchscript}}"\n')
    fake.chmod(0o755)
    comparison = bare_comparison(tmp_path, "--sdinterp", str(fake))
    comparison._sdinterp(REPO / "models" / "tiny-sd", "aoti", ["--unet-engine", "aoti"])
    stages = comparison.results["stages"]
    assert stages["golden"]["crash_triage"]["workaround"] == "preload libtorch_cpu.so"
    row = stages["c-aoti"]
    assert row["rc"] == 0 and row["gen_s"] > 0 and row["command"].startswith("preload libtorch_cpu.so sdinterp ")
    assert any("(d) sdinterp aoti (whole command) failed" in n for n in comparison.results["notes"])


def test_the_modules_export_their_entry_points_only(sdinterp):
    # Nothing of LibTorch's may bind to sdinterp's own copies of template instances and type records
    # (src/runtime/exports.map): LibTorch then binds as it does in Python, one difference fewer with
    # the process in which the CUDA package ran.
    for module, entry in (("libsdinterp_runtime.so", "sdinterp_runtime_create"),
                          ("libsdinterp_codecs.so", "sdinterp_codecs_make_sink")):
        listed = subprocess.run(["nm", "-D", "--defined-only", str(Path(sdinterp).parent / module)],
                                capture_output=True, text=True, check=True).stdout.split("\n")
        exported = [line.split()[-1] for line in listed if line.strip() and line.split()[1] not in "tbdr"]
        assert exported == [entry], (module, exported[:10])


def test_run_words_split_into_flags_and_environment():
    flags, env = gpu_compare.split_env(["--max-vram", "10", "SDINTERP_CUDNN_BENCHMARK=1", "--x=Y", "A1_B=c=d"])
    assert flags == ["--max-vram", "10", "--x=Y"]
    assert env == {"SDINTERP_CUDNN_BENCHMARK": "1", "A1_B": "c=d"}


def test_a_run_with_environment_words_runs_with_them(sdinterp, tmp_path):
    # The cuDNN row of (d): the variable reaches sdinterp (here a wrapper that records it) and the
    # command shown names it.
    fake = tmp_path / "sdinterp"
    fake.write_text(f'#!/usr/bin/env bash\necho "$SDINTERP_CUDNN_BENCHMARK" > {tmp_path}/seen\nexec {sdinterp} "$@"\n')
    fake.chmod(0o755)
    comparison = bare_comparison(tmp_path, "--sdinterp", str(fake))
    comparison._sdinterp(REPO / "models" / "tiny-sd", "cudnn", ["SDINTERP_CUDNN_BENCHMARK=1"])
    row = comparison.results["stages"]["c-cudnn"]
    assert row["rc"] == 0 and row["command"].startswith("SDINTERP_CUDNN_BENCHMARK=1 sdinterp generate ")
    assert row["outside_gen_s"] == pytest.approx(row["wall_s"] - row["gen_s"], abs=2e-3) and row["outside_gen_s"] > 0
    assert (tmp_path / "seen").read_text() == "1\n"
    # The metadata's load and memory records come along (no CUDA here: no memory peaks).
    assert row["bundle_load_s"]["total"] > 0 and row["cuda_memory_peaks_gib"] is None
    # The row's note says where the load went, the UNet's weights file apart.
    load = row["bundle_load_s"]
    assert f"bundle load {load['total']:.3f} s" in row["note"]
    assert f"UNet {load['unet']:.3f} (weights {load['weights']['unet']:.3f})" in row["note"]


def test_the_load_breakdown_in_words():
    load = {"total": 1.5, "unet": 1.2, "weights": {"unet": 0.9}, "cuda_context": 0.4}
    assert gpu_compare.load_breakdown(load) == "bundle load 1.500 s, UNet 1.200 (weights 0.900), context at 0.400"
    assert gpu_compare.load_breakdown({"total": 0.2, "unet": 0.1, "cuda_context": 0.0}) == "bundle load 0.200 s, UNet 0.100"
    assert gpu_compare.load_breakdown(None) == gpu_compare.load_breakdown({}) == ""


def test_the_default_aoti_runs_and_package_reuse(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_compare, "AOTI_CACHE", tmp_path / "cache")
    base = ["--out", str(tmp_path / "out")]
    a = gpu_compare.parse_args(["--device", "cuda", *base])
    # Nothing carried: row (d)'s package is compiled, and the first setting beside it.
    assert a.aoti_reuse is None and a.aoti_also == "cudnn-attention"
    assert "aoti no-warm-up=SDINTERP_CUDA_WARM_UP=0" in a.aoti_run
    assert "aoti pinned-upload=SDINTERP_PINNED_UPLOAD=1" in a.aoti_run
    # What sdinterp's default allocator setting saves: the whole command with LibTorch's own.
    assert a.aoti_run[2] == "aoti fixed-segments=PYTORCH_CUDA_ALLOC_CONF=expandable_segments:False"
    assert gpu_compare.split_env(a.aoti_run[2].partition("=")[2].split()) == (
        [], {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:False"})
    # Compiling, the run has no time for the cuDNN row: what row (d)'s compile must leave for the
    # essential stages, and the second compile for them and its row, fit in what the H100 run of
    # 2026-12-06 left its one compile (about 200 s of its 560 s budget), as what the VAE decoder's
    # compile must leave; the estimate of every stage is not far beyond. The TorchScript rows: the two
    # the comparison needs, then the optional one with cuDNN's attention.
    assert not any("cudnn-benchmark" in r for r in a.aoti_run)
    assert a.sdinterp_run == ["default=", "warm=", "warm sdpa-cudnn=SDINTERP_SDPA_FIRST=cudnn"]
    comparison = gpu_compare.Comparison(a)
    assert comparison._compile_reserve(second=True) == comparison._timed_stages_need(essential=True) + 2 * 12 <= 175
    assert comparison._timed_stages_need() <= 225
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "unet-float16-default.pt2").write_bytes(b"PK")
    a = gpu_compare.parse_args(["--device", "cuda", *base])
    assert a.aoti_reuse == str(tmp_path / "cache" / "unet-float16-default.pt2")
    assert a.aoti_also == "cudnn-attention"  # the time saved goes to a second setting
    assert "aoti warm cudnn-benchmark=SDINTERP_CUDNN_BENCHMARK=1" in a.aoti_run  # and to the cuDNN row
    # One more setting each run, in the exporter's order: once a package is carried, the next one.
    (tmp_path / "cache" / "unet-float16-cudnn-attention.pt2").write_bytes(b"PK")
    assert gpu_compare.parse_args(["--device", "cuda", *base]).aoti_also == "fast-diffusion"
    (tmp_path / "cache" / "unet-float16-fast-diffusion.pt2").write_bytes(b"PK")
    # Then the UNet compiled for this run's call only (30 frames with guidance at 512x512), before
    # the setting that benchmarks GEMM kernels while it compiles (it may not finish in a run).
    a = gpu_compare.parse_args(["--device", "cuda", *base])
    assert a.aoti_also == "static" and gpu_compare.also_settings(a, a.aoti_also) == ("default", "60x64x64")
    (tmp_path / "cache" / "unet-float16-default-static-60x64x64.pt2").write_bytes(b"PK")
    assert gpu_compare.parse_args(["--device", "cuda", *base]).aoti_also == "max-autotune-gemm"
    # Another job's call shape is another package; one beyond a package's batch has none.
    assert gpu_compare.parse_args(["--device", "cuda", "--frames", "20", *base]).aoti_also == "static"
    assert gpu_compare.parse_args(["--device", "cuda", "--frames", "40", *base]).aoti_also == "max-autotune-gemm"
    (tmp_path / "cache" / "unet-float16-max-autotune-gemm.pt2").write_bytes(b"PK")
    assert gpu_compare.parse_args(["--device", "cuda", *base]).aoti_also is None
    assert gpu_compare.parse_args(["--device", "cuda", "--frames", "40", *base]).aoti_also is None
    with pytest.raises(SystemExit):
        gpu_compare.parse_args(["--device", "cuda", "--frames", "40", "--aoti-also", "static", *base])
    with pytest.raises(SystemExit):
        gpu_compare.parse_args(["--device", "cuda", "--aoti-also", "fastest", *base])
    a = gpu_compare.parse_args(["--device", "cuda", "--aoti-also", "none", *base])
    assert a.aoti_reuse is not None and a.aoti_also is None
    # A float32 run takes no float16 package; a smoke run, or one without the compiled UNet, takes
    # none (nor compiles a second: the cache without it).
    assert gpu_compare.parse_args(["--device", "cuda", "--dtype", "float32", *base]).aoti_reuse is None
    (tmp_path / "cache" / "unet-float16-cudnn-attention.pt2").unlink()
    for skip in (["--device", "cpu", "--smoke"], ["--device", "cuda", "--smoke"], ["--device", "cuda", "--skip-aoti"],
                 ["--device", "cuda", "--skip-sdinterp"]):
        a = gpu_compare.parse_args([*skip, *base])
        assert a.aoti_reuse is None and a.aoti_also is None, skip
    assert gpu_compare.parse_args(["--device", "cuda", *base]).aoti_also == "cudnn-attention"
    a = gpu_compare.parse_args(["--device", "cuda", "--aoti-reuse", "none", *base])
    assert a.aoti_reuse is None and a.aoti_also == "cudnn-attention"


def test_the_compile_is_stopped_only_for_the_essential_rows_and_optional_rows_yield(tmp_path):
    # The UNet's compile for row (d) is waited for until only the essential stages fit: (b), (b2),
    # (c), (c) warm, (d), (d) warm, then (e) and (a); the other rows skip themselves instead, while
    # (e) and (a) keep their time.
    a = gpu_compare.parse_args(["--device", "cuda", "--out", str(tmp_path / "out"), "--sdinterp", sys.executable])
    comparison = gpu_compare.Comparison(a)
    essential = comparison._timed_stages_need(essential=True)
    assert essential == 20 + 5 + 12 * 4 + 75 and comparison._timed_stages_need() > essential + 30
    a.skip_notebook_loop = True
    assert comparison._tail_need() == 60  # (e) starts with 60 s left
    a.skip_notebook_loop = False
    a.deadline = time.time() + 80  # a row and (e) and (a) need 12 + 75 s
    comparison.clock = gpu_compare.Clock(a.deadline)
    comparison._sdinterp(tmp_path, "aoti pinned-upload", ["--unet-engine", "aoti"], optional=True)
    row = comparison.results["stages"]["c-aoti-pinned-upload"]
    assert row["note"].startswith("skipped: out of time (what is left is kept for (e) and (a))"), row
    comparison._sdinterp(tmp_path, "warm sdpa-cudnn", ["--unet-engine", "torchscript", "SDINTERP_SDPA_FIRST=cudnn"],
                         optional=True)
    row = comparison.results["stages"]["c-warm-sdpa-cudnn"]
    assert row["method"] == "(c) sdinterp warm sdpa-cudnn: 2nd job of one `sdinterp batch`", row
    assert row["note"].startswith("skipped: out of time"), row


def test_the_decoders_package_is_reused_and_added_to_a_copy_of_the_bundle(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_compare, "AOTI_CACHE", tmp_path / "cache")
    base = ["--out", str(tmp_path / "out")]
    assert gpu_compare.parse_args(["--device", "cuda", *base]).vae_reuse is None
    (tmp_path / "cache").mkdir()
    cached = tmp_path / "cache" / "vae_decoder-float16-default.pt2"
    cached.write_bytes(b"PK")
    assert gpu_compare.parse_args(["--device", "cuda", *base]).vae_reuse == str(cached)
    assert gpu_compare.parse_args(["--device", "cuda", "--aoti-reuse", "none", *base]).vae_reuse is None
    assert gpu_compare.parse_args(["--device", "cpu", "--smoke", *base]).vae_reuse is None
    # Row (d) compiled-decode is counted in what the compile must leave for the timed stages.
    a = gpu_compare.parse_args(["--device", "cuda", *base])
    with_row = gpu_compare.Comparison(a)._timed_stages_need()
    assert with_row <= 225
    assert gpu_compare.Comparison(gpu_compare.parse_args(["--device", "cuda", "--skip-levers", *base])) \
        ._timed_stages_need() == with_row - 12.0 - 20.0
    # The bundle with the package: hard links but for model.json, which gains vae.compiled while
    # the original's stays as it was.
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "unet.pt").write_bytes(b"unet")
    original = {"format_version": 3, "vae": {"decoder": "vae_decoder.pt", "scale_factor": 8}}
    (bundle / "model.json").write_text(json.dumps(original))
    package = tmp_path / "vae_decoder.pt2"
    package.write_bytes(b"package")
    record = {"kind": "aoti", "file": "vae_decoder.pt2", "batch_min": 1, "batch_max": 63, "latent_multiple": 1,
              "latent_max": 128, "weights_fnv1a64": "0123456789abcdef", "tuning": "default"}
    dst = tmp_path / "bundle-vae"
    gpu_compare.bundle_with_decoder(bundle, package, record, dst)
    assert json.loads((bundle / "model.json").read_text()) == original
    written = json.loads((dst / "model.json").read_text())
    assert written["vae"] == {**original["vae"], "compiled": record}
    assert (dst / "vae_decoder.pt2").read_bytes() == b"package"
    assert (dst / "unet.pt").stat().st_ino == (bundle / "unet.pt").stat().st_ino


def test_a_refused_reused_package_is_compiled_instead(tmp_path, monkeypatch):
    comparison = bare_comparison(tmp_path)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    started = []

    def fake_start(folder, bundle_, tuning=None, reuse=None, log_name="aoti.log", static=None):
        # The reuse fails as the exporter says it; the compile then writes a package and its record.
        started.append(reuse)
        script = ("echo 'export_bundle: error: --aoti-reuse x.pt2: cannot load it here'; exit 1" if reuse else
                  f"printf PK > {bundle_}/unet.pt2; echo '{{\"unet\": {{\"compiled\": {{\"tuning\": \"default\", "
                  f"\"compile_seconds\": 1.0}}}}}}' > {bundle_}/model.json")
        log = open(comparison.out / log_name, "w")
        proc = subprocess.Popen(["sh", "-c", script], stdout=log, stderr=subprocess.STDOUT)
        return {"proc": proc, "log": log, "t0": 0.0, "shown": "x", "folder": folder, "bundle": bundle_,
                "tuning": tuning or "default", "reuse": reuse, "log_name": log_name, "static": static}

    monkeypatch.setattr(comparison, "_start_aoti", fake_start)
    assert comparison._finish_aoti(fake_start(tmp_path, bundle, reuse="x.pt2"), "aoti_compile",
                                   comparison._compile_reserve())
    assert started == ["x.pt2", None]
    stage = comparison.results["stages"]["aoti_compile"]
    assert stage["rc"] == 0 and "cannot load it here" in stage["reuse_failed"]
    assert stage["package_kept"] == "unet-float32-default.pt2"  # a fresh compile is brought back
    assert (comparison.out / "unet-float32-default.pt2").read_bytes() == b"PK"
    assert any("compiling instead" in n for n in comparison.results["notes"])


def test_the_second_compile_yields_to_row_ds(tmp_path, monkeypatch):
    # The --aoti-also compile runs at a lower priority than row (d)'s and is stopped first: with
    # time left between the two reserves, row (d)'s is waited for to its end, the second one is not.
    comparison = bare_comparison(tmp_path)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    script = ("import os, sys, time; print(os.nice(0), flush=True); time.sleep(float(sys.argv[1])); "
              "open(sys.argv[2] + '/unet.pt2', 'wb').write(b'PK'); "
              "open(sys.argv[2] + '/model.json', 'w').write('{\"unet\": {\"compiled\": {\"tuning\": \"default\"}}}')")
    sleeps = {}
    monkeypatch.setattr(comparison, "_exporter_command",
                        lambda folder, bundle_, flag, dtype=None: [sys.executable, "-c", script, sleeps[bundle_.name],
                                                                   str(bundle_), flag])
    second_bundle = tmp_path / "bundle-fast-diffusion"
    second_bundle.mkdir()
    sleeps.update({"bundle": "2", "bundle-fast-diffusion": "60"})
    first = comparison._start_aoti(tmp_path, bundle)
    second = comparison._start_aoti(tmp_path, second_bundle, "fast-diffusion", None, "aoti-fast-diffusion.log",
                                    second=True)
    assert comparison._compile_reserve(second=True) > comparison._compile_reserve() + comparison.ROW_S
    logs = [comparison.out / name for name in ("aoti.log", "aoti-fast-diffusion.log")]
    for _ in range(200):  # each has said its priority
        if all(f.read_text().strip() for f in logs):
            break
        time.sleep(0.05)
    niceness = [int(f.read_text().split()[0]) for f in logs]
    assert niceness[1] == min(niceness[0] + 10, 19), niceness
    comparison.a.deadline = time.time() + comparison._compile_reserve() + comparison.ROW_S
    comparison.clock = gpu_compare.Clock(comparison.a.deadline)
    t0 = time.perf_counter()
    assert not comparison._finish_aoti(second, "aoti_compile_fast-diffusion", comparison._compile_reserve(second=True))
    assert time.perf_counter() - t0 < 30  # stopped, not waited for
    assert comparison._finish_aoti(first, "aoti_compile", comparison._compile_reserve())
    assert comparison.results["stages"]["aoti_compile"]["rc"] == 0
    assert comparison.results["stages"]["aoti_compile_fast-diffusion"]["rc"] == "timeout"
    # The VAE decoder's compile yields at the same point as the second UNet setting's: waited for
    # with a little more time left than that, stopped with less.
    package = tmp_path / "vae_decoder.pt2"
    package.write_bytes(b"PK")

    def vae_compile(seconds: float) -> dict:
        done = json.dumps({"record": {"tuning": "default", "batch_min": 1, "batch_max": 63, "latent_multiple": 1,
                                      "latent_max": 128}})
        script = f"import time; time.sleep({seconds}); print({done!r})"
        log = open(comparison.out / "vae_compile.log", "w")
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=log, start_new_session=True)
        return {"proc": proc, "log": log, "t0": time.perf_counter(), "package": package}

    comparison.clock = gpu_compare.Clock(time.time() + comparison._compile_reserve(second=True) + 20)
    assert comparison._finish_vae_compile(vae_compile(1))[0] == package
    assert comparison.results["stages"]["levers"]["vae_compile_rc"] == 0
    comparison.clock = gpu_compare.Clock(time.time() + comparison._compile_reserve(second=True) - 5)
    assert comparison._finish_vae_compile(vae_compile(60)) == (None, None)
    assert comparison.results["stages"]["levers"]["vae_compile_rc"] == "timeout"
    assert comparison.results["stages"]["levers"]["vae_compile_wall_s"] < 30


def test_what_a_package_calls_is_recorded_and_a_tuning_that_did_not_take_is_said(tmp_path):
    # A package's wrapper names the operators it leaves to LibTorch: the record says which attention
    # kernel it calls, so a cudnn-attention package on flash attention is not taken for cuDNN's.
    comparison = bare_comparison(tmp_path)
    wrapper = """
        AOTI_TORCH_ERROR_CODE_CHECK(aoti_torch_cuda_convolution(buf8, buf9, &bias));
        AOTI_TORCH_ERROR_CODE_CHECK(aoti_torch_cuda_convolution(buf16, buf17, &bias));
        AOTI_TORCH_ERROR_CODE_CHECK(aoti_torch_cuda_mm_out(buf20, buf18, buf19));
        AOTI_TORCH_ERROR_CODE_CHECK(aoti_torch_cuda__scaled_dot_product_flash_attention(buf21, buf22, buf23));
    """
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    with zipfile.ZipFile(bundle / "unet.pt2", "w") as z:
        z.writestr("unet/data/aotinductor/model/abc.wrapper.cpp", wrapper)
        z.writestr("unet/data/aotinductor/model/abc.kernel.cpp", "aoti_torch_cuda_addmm_out(x);")
    assert gpu_compare.package_kernels(bundle / "unet.pt2") == {
        "attention_kernels": ["flash"],
        "extern_calls": {"_scaled_dot_product_flash_attention": 1, "convolution": 2, "mm": 1}}
    assert gpu_compare.attention_kernel_named("cudnn-attention") == "cudnn"
    assert gpu_compare.attention_kernel_named("fast-diffusion") is None

    def finish(tuning):
        (bundle / "model.json").write_text(json.dumps({"unet": {"compiled": {"tuning": tuning}}}))
        log = open(comparison.out / "aoti.log", "w")
        job = {"proc": subprocess.Popen(["true"]), "log": log, "t0": 0.0, "shown": "x", "folder": tmp_path,
               "bundle": bundle, "tuning": tuning, "reuse": None, "log_name": "aoti.log", "static": None}
        assert comparison._finish_aoti(job, f"aoti_compile_{tuning}", comparison._compile_reserve())
        return comparison.results["stages"][f"aoti_compile_{tuning}"]

    assert finish("default")["attention_kernels"] == ["flash"]
    assert not comparison.results["notes"]
    stage = finish("cudnn-attention")
    assert stage["attention_kernels"] == ["flash"] and stage["extern_calls"]["convolution"] == 2
    assert any(n.startswith("the cudnn-attention package calls flash attention kernel, not cudnn's")
               for n in comparison.results["notes"]), comparison.results["notes"]


def test_the_attention_kernel_choice_covers_every_attention_call(tmp_path, monkeypatch):
    # One UNet call and one VAE decode at batch 1 give every distinct attention call, with how many
    # times each is made; LibTorch's choice is then asked at the job's batches, in its own order and
    # with each kernel first. On a GPU, a note says when cuDNN's takes no UNet call.
    import torch
    from diffusers.models.attention_processor import Attention
    from torch.nn.attention import SDPBackend

    pipe = gpu_compare.make_pipeline(gpu_compare.TINY, "cpu", 0, True)
    original = torch.nn.functional.scaled_dot_product_attention
    calls = gpu_compare.attention_calls(pipe, (8, 8))
    assert torch.nn.functional.scaled_dot_product_attention is original
    for module, model in (("unet", pipe.unet), ("vae_decoder", pipe.vae.decoder)):
        mine = [c for c in calls if c["module"] == module]
        assert sum(c["calls"] for c in mine) == sum(isinstance(m, Attention) for m in model.modules()) > 0
    cross = [c for c in calls if c["key"][1] == 77]
    assert cross and all(c["module"] == "unet" and c["query"][0] == c["key"][0] for c in cross)
    assert any(c["query"][1] == 64 for c in calls if c["module"] == "unet")  # the 8x8 latent's 64 tokens
    chosen = gpu_compare.attention_choice(calls, {"unet": 6, "vae_decoder": 3}, "cpu", torch.float32)
    assert [c["batch"] for c in chosen] == [6 if c["module"] == "unet" else 3 for c in calls]
    for c in chosen:
        assert {c[order] for order in ["default", *gpu_compare.ATTENTION_FIRST]} <= set(SDPBackend.__members__)

    comparison = bare_comparison(tmp_path)
    comparison._attention_choice(pipe, (8, 8))
    assert comparison.results["stages"]["attention_choice"]["calls"] == chosen
    assert not comparison.results["notes"]
    comparison.a.cuda = True  # as on a GPU where cuDNN's attention takes nothing
    comparison._attention_choice(pipe, (8, 8))
    assert any(n.startswith("no UNet attention call takes cudnn attention") for n in comparison.results["notes"])
    monkeypatch.setattr(gpu_compare, "attention_calls", lambda *_: 1 / 0)
    comparison._attention_choice(pipe, (8, 8))
    assert comparison.results["stages"]["attention_choice"]["error"].startswith("ZeroDivisionError")


def test_what_would_measure_an_attention_kernel_that_takes_no_call_is_passed_over(tmp_path, monkeypatch):
    # On a GPU where cuDNN's attention takes none of the UNet's calls, the run compiles the next
    # --aoti-also candidate instead of cudnn-attention, and leaves out the TorchScript row with
    # cuDNN's attention first; a setting the run was told to compile stays.
    import torch

    monkeypatch.setattr(gpu_compare, "AOTI_CACHE", tmp_path / "cache")
    base = ["--device", "cuda", "--out", str(tmp_path / "out"), "--sdinterp", sys.executable]

    def picks(cudnn_takes: bool) -> list[dict]:
        other = {"default": "FLASH_ATTENTION", "FLASH_ATTENTION": "FLASH_ATTENTION", "MATH": "MATH",
                 "EFFICIENT_ATTENTION": "EFFICIENT_ATTENTION"}
        return [{"module": "unet", "query": [8, 4096, 40], "key": [8, 77, 40], "calls": 16, "batch": 60, **other,
                 "CUDNN_ATTENTION": "CUDNN_ATTENTION" if cudnn_takes else "FLASH_ATTENTION"},
                {"module": "vae_decoder", "query": [1, 4096, 512], "key": [1, 4096, 512], "calls": 1, "batch": 30,
                 **other, "CUDNN_ATTENTION": "EFFICIENT_ATTENTION"}]

    monkeypatch.setattr(gpu_compare, "attention_calls", lambda *_: [])
    for cudnn_takes in (True, False):
        comparison = gpu_compare.Comparison(gpu_compare.parse_args(base))
        comparison.torch = torch
        a = comparison.a
        assert a.aoti_also == "cudnn-attention" and "warm sdpa-cudnn=SDINTERP_SDPA_FIRST=cudnn" in a.sdinterp_run
        monkeypatch.setattr(gpu_compare, "attention_choice", lambda *_, takes=cudnn_takes: picks(takes))
        comparison._attention_choice(None, (64, 64))
        assert "calls" in comparison.results["stages"]["attention_choice"]
        if cudnn_takes:
            assert a.aoti_also == "cudnn-attention" and len(a.sdinterp_run) == 3 and not comparison.results["notes"]
            continue
        assert a.aoti_also == "fast-diffusion"
        assert a.sdinterp_run == ["default=", "warm="]
        notes = comparison.results["notes"]
        assert any(n.startswith("no UNet attention call takes cudnn attention") for n in notes), notes
        assert any("--aoti-also cudnn-attention passed over" in n and "compiling fast-diffusion instead" in n
                   for n in notes), notes
    comparison = gpu_compare.Comparison(gpu_compare.parse_args([*base, "--aoti-also", "cudnn-attention"]))
    comparison.torch = torch
    comparison._attention_choice(None, (64, 64))
    assert "calls" in comparison.results["stages"]["attention_choice"]
    assert comparison.a.aoti_also == "cudnn-attention"  # asked for by name: measured anyway


def test_link_copy_shares_files_until_one_is_replaced(tmp_path):
    src = tmp_path / "bundle"
    (src / "tokenizer").mkdir(parents=True)
    (src / "model.json").write_text("a")
    (src / "tokenizer" / "vocab.json").write_text("v")
    dst = tmp_path / "bundle-x"
    gpu_compare.link_copy(src, dst)
    assert os.path.samefile(src / "tokenizer" / "vocab.json", dst / "tokenizer" / "vocab.json")
    # As the exporter writes: a new file renamed over the old one.
    (dst / "new.json").write_text("b")
    os.replace(dst / "new.json", dst / "model.json")
    assert (src / "model.json").read_text() == "a" and (dst / "model.json").read_text() == "b"


def test_the_attention_kernel_switch_takes_its_names_only_and_changes_nothing_on_the_cpu(sdinterp, tmp_path):
    # SDINTERP_SDPA_FIRST (the optional TorchScript row's switch) acts on CUDA only; a name it does
    # not know is refused on any device, in one line, before anything is written.
    def run(value: str, out: str):
        return subprocess.run([sdinterp, "generate", "--bundle", str(REPO / "models" / "tiny-sd"), "--prompt", "a fox",
                               "--seed", "3", "--frames", "2", "--steps", "2", "--png-dir", str(tmp_path / out), "-q"],
                              capture_output=True, text=True, env={**os.environ, gpu_compare.SDPA_FIRST_ENV: value})

    bad = run("fastest", "bad")
    assert bad.returncode == 2
    assert bad.stderr == ("sdinterp: error: SDINTERP_SDPA_FIRST is 'fastest': use cudnn, flash, efficient or math "
                          "(or leave it unset)\n")
    assert not (tmp_path / "bad").exists()
    for value in ("cudnn", "math", ""):
        assert run(value, f"v{value}").returncode == 0
    frames = [[f.read_bytes() for f in sorted((tmp_path / f"v{v}").glob("frame_*.png"))] for v in ("cudnn", "math", "")]
    assert len(frames[0]) == 2 and frames[0] == frames[1] == frames[2]


@pytest.mark.parametrize("variable", ["SDINTERP_CUDNN_BENCHMARK", "SDINTERP_CUDA_WARM_UP", "SDINTERP_PINNED_UPLOAD"])
def test_an_unknown_cuda_switch_value_is_refused_and_each_value_changes_nothing_on_the_cpu(variable, sdinterp,
                                                                                          tmp_path):
    def run(value: str, out: str):
        return subprocess.run([sdinterp, "generate", "--bundle", str(REPO / "models" / "tiny-sd"), "--prompt", "a fox",
                               "--seed", "3", "--frames", "2", "--steps", "2", "--png-dir", str(tmp_path / out), "-q"],
                              capture_output=True, text=True, env={**os.environ, variable: value})

    bad = run("yes", "bad")
    assert bad.returncode == 2
    assert bad.stderr == f"sdinterp: error: {variable} is 'yes': use 0 or 1 (or leave it unset)\n"
    assert not (tmp_path / "bad").exists()
    for value in ("0", "1", ""):
        assert run(value, f"v{value}").returncode == 0
    frames = [[f.read_bytes() for f in sorted((tmp_path / f"v{v}").glob("frame_*.png"))] for v in ("0", "1", "")]
    assert len(frames[0]) == 2 and frames[0] == frames[1] == frames[2]


def test_the_essential_sdinterp_rows_run_before_every_optional_one(tmp_path, monkeypatch):
    # An optional row skips itself only to keep (e)'s and (a)'s time, so none may run before an
    # essential one: (c), (c) warm, (d), (d) warm first, then the speed candidates, then the rest.
    monkeypatch.setattr(gpu_compare, "AOTI_CACHE", tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "unet-float16-default.pt2").write_bytes(b"PK")
    a = gpu_compare.parse_args(["--device", "cuda", "--out", str(tmp_path / "out")])
    comparison = gpu_compare.Comparison(a)
    b, also, vae = tmp_path / "bundle", tmp_path / "bundle-also", tmp_path / "bundle-vae"
    plan = comparison._row_plan(b, True, also, vae)
    names = [(row[1], row[3]) for row in plan]
    assert names == [("default", False), ("warm", False), ("aoti", False), ("aoti warm", False),
                     ("aoti cudnn-attention warm", True), ("aoti warm compiled-decode", True),
                     ("warm sdpa-cudnn", True), ("aoti warm cudnn-benchmark", True), ("aoti fixed-segments", True),
                     ("aoti no-warm-up", True), ("aoti pinned-upload", True)]
    assert [row[0] for row in plan] == [b] * 4 + [also, vae] + [b] * 5
    assert plan[6][2] == ["--unet-engine", "torchscript", "SDINTERP_SDPA_FIRST=cudnn"]
    assert plan[8][2] == ["--unet-engine", "aoti", "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:False"]
    assert plan[10][2] == ["--unet-engine", "aoti", "SDINTERP_PINNED_UPLOAD=1"]
    # Without the compiled UNet, TorchScript's rows only.
    assert [(row[1], row[3]) for row in comparison._row_plan(b, False, None, None)] == [
        ("default", False), ("warm", False), ("warm sdpa-cudnn", True)]


def test_a_package_for_one_call_shape_is_kept_under_a_name_of_its_own(tmp_path):
    # The static package's record has the default settings: its name says its shape, so that it
    # neither replaces nor is taken for row (d)'s package.
    package = tmp_path / "unet.pt2"
    package.write_bytes(b"PK")
    dynamic = {"tuning": "default", "batch_min": 2, "batch_max": 63, "latent_multiple": 8, "latent_max": 128}
    static = {"tuning": "default", "batch_min": 60, "batch_max": 60, "latent_multiple": 64, "latent_max": 64}
    decoder = {"tuning": "default", "batch_min": 1, "batch_max": 63, "latent_multiple": 1, "latent_max": 128}
    assert gpu_compare.package_label(dynamic) == "default"
    assert gpu_compare.package_label(static) == "default-static-60x64x64"
    assert gpu_compare.package_label(decoder) == "default"
    assert gpu_compare.keep_package(package, static, tmp_path, "float16", "unet") == "unet-float16-default-static-60x64x64.pt2"
    assert gpu_compare.keep_package(package, dynamic, tmp_path, "float16", "unet") == "unet-float16-default.pt2"
    a = gpu_compare.parse_args(["--device", "cuda", "--out", str(tmp_path / "out"), "--aoti-also", "static"])
    assert gpu_compare.also_label(a, "static") == gpu_compare.package_label(static)
    assert gpu_compare.also_label(a, "fast-diffusion") == "fast-diffusion"
