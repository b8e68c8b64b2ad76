"""Sharded batches on a real Slurm: Debian's slurm-wlm (scripts/setup.sh installs it), started by the test
on loopback (slurmctld and slurmd in the foreground, auth/none, state and logs in a temporary folder,
private ports; the configuration of shared notes on a loopback Slurm). A 3-task array of
`sdinterp batch --skip-existing` over 9 tiny-sd jobs, one task killed with SIGKILL mid-run and
requeued; then `batch --status` says all done and every output equals a single-process batch's, byte
for byte. Also: `batch --shard` and the Slurm/Kubernetes environments through the binary, and the
status of failed and missing jobs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import tiny_sd

BUNDLE = str(tiny_sd.TINY_SD)
DAEMONS = ("slurmctld", "slurmd", "sbatch", "scontrol", "squeue", "sinfo", "scancel")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slurm_conf(folder: Path) -> str:
    return f"""ClusterName=sdinterptest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
AuthInfo=cred_expire=5
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/log/slurmctld.log
SlurmdLogFile={folder}/log/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,sched_interval=1,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=300
KillWait=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def wait_for(what: str, check, timeout: float = 60.0, every: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def slurm(tmp_path_factory):
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        pytest.fail(f"Slurm is not installed ({', '.join(missing)} missing): scripts/setup.sh installs slurm-wlm")
    if os.geteuid() != 0:
        pytest.skip("the loopback Slurm runs its daemons as root (SlurmUser=root)")
    folder = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool", "log"):
        (folder / sub).mkdir()
    conf = folder / "slurm.conf"
    conf.write_text(slurm_conf(folder))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    log = open(folder / "log" / "daemons.out", "w")
    daemons = [subprocess.Popen(["slurmctld", "-D", "-c", "-f", str(conf)], env=env, stdout=log, stderr=log),
               subprocess.Popen(["slurmd", "-D", "-N", "localhost", "-f", str(conf)], env=env, stdout=log,
                                stderr=log)]

    def run(*args, check=True):
        proc = subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            pytest.fail(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc.stdout

    run.folder = folder  # its logs, for a failing test to show
    try:
        wait_for("the loopback Slurm to be idle",
                 lambda: run("sinfo", "-h", "-o", "%T", check=False).strip() == "idle", timeout=60)
        yield run
    finally:
        run("scancel", "-u", "root", check=False)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and run("squeue", "-h", "-t", "PD,R,CG,S", check=False).strip():
            time.sleep(0.25)
        run("scontrol", "shutdown", check=False)
        for d in daemons:
            try:
                d.wait(timeout=15)
            except subprocess.TimeoutExpired:
                d.terminate()
                try:
                    d.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    d.kill()
                    d.wait()
        log.close()


def write_jobs(path: Path, out: str, count: int = 9) -> None:
    lines = ["# nine tiny-sd walks"]
    for i in range(count):
        lines.append(json.dumps({"bundle": BUNDLE, "prompt": f"a lighthouse {i}", "seed": i, "frames": 4, "steps": 6,
                                 "output": f"{out}/{i}.gif"}))
        if i == 4:
            lines.append("")
    path.write_text("\n".join(lines) + "\n")


def task_states(run, array_id: str) -> dict[int, str]:
    text = run("scontrol", "show", "job", array_id, check=False)
    states = {}
    for block in text.split("\n\n"):
        task = re.search(r"ArrayTaskId=(\d+)", block)
        state = re.search(r"JobState=(\w+)", block)
        if task and state:
            states[int(task.group(1))] = state.group(1)
    return states


def sdinterp_of_task(task: int) -> int | None:
    """The pid of the sdinterp batch process of array task `task`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"sdinterp") and b"batch" in cmdline and \
                f"SLURM_ARRAY_TASK_ID={task}".encode() in environ:
            return int(entry.name)
    return None


def test_a_slurm_array_with_a_killed_and_requeued_task_completes_the_set(sdinterp, slurm, tmp_path):
    write_jobs(tmp_path / "jobs.jsonl", "out")
    (tmp_path / "out").mkdir()
    task = tmp_path / "task.sh"
    task.write_text(f"#!/bin/bash\nexec {sdinterp} batch jobs.jsonl --skip-existing --progress none\n")
    task.chmod(0o755)
    array_id = slurm("sbatch", "--parsable", "--array=0-2", "-c", "1", f"--chdir={tmp_path}",
                     f"--output={tmp_path}/slurm-%A_%a.out", str(task)).strip()
    # Task 1 (jobs 1, 4, 7): killed outright once its first output is there, in the middle of the next.
    pid = wait_for("task 1's sdinterp", lambda: sdinterp_of_task(1), timeout=120, every=0.05)
    out = tmp_path / "out"
    wait_for("task 1's first output, published", lambda: (out / "1.gif").exists() and (out / "1.gif.json").exists() and
             not (out / ".1.gif.json.publishing").exists(), timeout=120, every=0.02)
    os.kill(pid, signal.SIGKILL)
    wait_for("task 1 to fail", lambda: task_states(slurm, array_id).get(1) == "FAILED", timeout=60)
    assert not (tmp_path / "out" / "7.gif").exists()
    # Requeued with its start time set to now, the task can be launched before slurmd has finished
    # with the killed run: slurmd then refuses it ("Job N already killed, do not launch batch job",
    # seen in a fresh-clone CI run's slurmd.log) and the task is FAILED again at once (Restarts=1,
    # Reason=NonZeroExitCode, nothing in its log). A cluster script would requeue it again; so does
    # this test, every 3 s while the task is FAILED, up to 5 times. While it is pending, every 10 s it
    # is also released (a no-op for a job that is not held), a drained or down node is resumed, and
    # its start time is set to now again.
    def requeue():
        slurm("scontrol", "requeue", f"{array_id}_1", check=False)
        slurm("scontrol", "update", f"JobId={array_id}_1", "StartTime=now", check=False)

    requeue()
    requeues, nudged = [1], [time.monotonic()]

    def all_completed():
        states = task_states(slurm, array_id)
        waited = time.monotonic() - nudged[0]
        if states.get(1) == "FAILED" and waited > 3 and requeues[0] < 6:
            requeue()
            requeues[0] += 1
            nudged[0] = time.monotonic()
        elif states.get(1) == "PENDING" and waited > 10:
            slurm("scontrol", "release", f"{array_id}_1", check=False)
            node_state = slurm("sinfo", "-h", "-o", "%T", check=False)
            if any(word in node_state for word in ("drain", "down", "fail")):
                slurm("scontrol", "update", "NodeName=localhost", "State=RESUME", check=False)
            slurm("scontrol", "update", f"JobId={array_id}_1", "StartTime=now", check=False)
            nudged[0] = time.monotonic()
        return states if len(states) == 3 and all(v == "COMPLETED" for v in states.values()) else None

    try:
        states = wait_for("every task to complete", all_completed, timeout=240, every=0.5)
    except BaseException:
        # What the next failure needs to be understood: the task's record, its log, the controller's.
        task_log = "".join(p.read_text(errors="replace") for p in tmp_path.glob("slurm-*_1.out"))
        print(f"task 1 (requeued {requeues[0]} times):", slurm("scontrol", "show", "job", f"{array_id}_1", check=False),
              "\ntask 1's log:", task_log)
        for log_file in sorted((slurm.folder / "log").glob("*.log")):
            print(f"{log_file.name} (last 40 lines):", *log_file.read_text(errors="replace").splitlines()[-40:],
                  sep="\n")
        raise
    assert states == {0: "COMPLETED", 1: "COMPLETED", 2: "COMPLETED"}

    status = subprocess.run([sdinterp, "batch", "jobs.jsonl", "--status", "--json"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stdout + status.stderr
    report = json.loads(status.stdout)
    assert (report["done"], report["total"]) == (9, 9)
    # Each task loaded the model once; the requeued one finished only what was missing.
    logs = {int(p.name.split("_")[-1].split(".")[0]): p.read_text() for p in tmp_path.glob("slurm-*_*.out")}
    for i in range(3):
        assert "model loaded 1 time\n" in logs[i], logs[i]
        assert f"shard {i}/3 (Slurm array): 3 of 9 jobs" in logs[i], logs[i]
    assert re.search(r"batch: [12] done, [12] skipped, 0 failed", logs[1]), logs[1]
    # Nothing half-written stays: no hidden temporaries or markers, every output with its metadata.
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted([f"{i}.gif" for i in range(9)] + [f"{i}.gif.json" for i in range(9)]), names

    # The same file in one process: the same bytes.
    write_jobs(tmp_path / "single.jsonl", "single")
    proc = subprocess.run([sdinterp, "batch", "single.jsonl", "--progress", "none"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for i in range(9):
        assert (tmp_path / "out" / f"{i}.gif").read_bytes() == (tmp_path / "single" / f"{i}.gif").read_bytes(), i


def test_shards_from_flags_and_environments_split_the_jobs(sdinterp, tmp_path):
    write_jobs(tmp_path / "jobs.jsonl", "out", count=5)
    ran = {}
    for name, extra, env in (
            ("flag", ["--shard", "0/3"], {}),
            ("slurm", [], {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_MAX": "6"}),
            ("k8s", ["--shard-count", "3"], {"JOB_COMPLETION_INDEX": "2"})):
        proc = subprocess.run([sdinterp, "batch", "jobs.jsonl", "--progress", "none", "--steps", "1", *extra],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300,
                              env={**os.environ, **env})
        assert proc.returncode == 0, proc.stderr
        ran[name] = sorted(int(m) for m in re.findall(r"out/(\d+)\.gif", proc.stdout))
    # Job lines 0..4 (the comment and the blank line not counted): i modulo 3.
    assert ran == {"flag": [0, 3], "slurm": [1, 4], "k8s": [2]}
    # A half-given environment is an error, not a run of every job.
    for env, words in (({"SLURM_ARRAY_TASK_ID": "1"}, "cannot tell how many shards"),
                       ({"JOB_COMPLETION_INDEX": "1"}, "--shard-count N or set SDINTERP_SHARD_COUNT")):
        proc = subprocess.run([sdinterp, "batch", "jobs.jsonl"], cwd=tmp_path, capture_output=True, text=True,
                              env={**os.environ, **env})
        assert proc.returncode == 2 and words in proc.stderr, proc.stderr


def test_status_names_failed_missing_and_invalid_jobs(sdinterp, tmp_path):
    lines = [json.dumps({"bundle": BUNDLE, "prompt": "a", "seed": 1, "frames": 2, "steps": 1, "output": "a.gif"}),
             json.dumps({"bundle": str(tmp_path / "nowhere"), "prompt": "b", "output": "b.gif"}),
             json.dumps({"bundle": BUNDLE, "prompt": "c", "frames": 2, "steps": 1, "output": "c.gif"}),
             json.dumps({"bundle": BUNDLE, "prompt": "d", "frames": 1, "output": "d.gif"})]
    (tmp_path / "jobs.jsonl").write_text("\n".join(lines) + "\n")
    proc = subprocess.run([sdinterp, "batch", "jobs.jsonl", "--shard", "0/2", "--progress", "none"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr  # shard 0: job lines 0 and 2 (a.gif, c.gif)
    assert not list(tmp_path.glob("*.error.json"))
    proc = subprocess.run([sdinterp, "batch", "jobs.jsonl", "--status", "--json"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 6
    report = json.loads(proc.stdout)
    assert [(j["line"], j["state"]) for j in report["jobs"]] == [(1, "done"), (2, "missing"), (3, "done"),
                                                                  (4, "invalid")]
    # Shard 1 runs job 1 (the missing bundle): it fails and leaves its error record.
    proc = subprocess.run([sdinterp, "batch", "jobs.jsonl", "--shard", "1/2", "--progress", "none"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 6
    record = json.loads((tmp_path / "b.gif.error.json").read_text())
    assert record["source"] == "jobs.jsonl:2" and record["exit_code"] == 3 and "bundle" in record["message"]
    proc = subprocess.run([sdinterp, "batch", "jobs.jsonl", "--status"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 6
    assert re.search(r"^failed  jobs\.jsonl:2  b\.gif: .*bundle", proc.stdout, re.M), proc.stdout
    assert "status: 2 done, 0 missing, 1 failed, 1 invalid, of 4 jobs" in proc.stdout
    # Fixed and run again: the record goes.
    lines[1] = json.dumps({"bundle": BUNDLE, "prompt": "b", "seed": 2, "frames": 2, "steps": 1, "output": "b.gif"})
    (tmp_path / "jobs.jsonl").write_text("\n".join(lines) + "\n")
    subprocess.run([sdinterp, "batch", "jobs.jsonl", "--shard", "1/2", "--progress", "none"], cwd=tmp_path,
                   capture_output=True, timeout=300)
    assert not (tmp_path / "b.gif.error.json").exists()


def test_status_names_a_line_that_is_not_json_at_its_column_once(sdinterp, tmp_path):
    # And an output of no format it knows is invalid, not failed, once a batch has run it.
    bad = json.dumps({"bundle": BUNDLE, "prompt": "a", "seed": 1, "frames": 2, "steps": 1, "output": "a.avi"})
    (tmp_path / "jobs.jsonl").write_text('{"prompt": 3\n' + bad + "\n")
    proc = subprocess.run([sdinterp, "batch", "jobs.jsonl"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 6
    proc = subprocess.run([sdinterp, "batch", "jobs.jsonl", "--status"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 6
    assert proc.stdout.splitlines()[:2] == [
        "invalid jobs.jsonl:1:13: not valid JSON: syntax error while parsing object - unexpected end of input; "
        "expected '}'",
        "invalid jobs.jsonl:2: cannot tell the output format of 'a.avi' from its extension; use .gif, .webp, .mp4 "
        "(for PNG frames use --png-dir a.avi)"], proc.stdout
