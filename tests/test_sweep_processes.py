"""Whole `selectivity sweep` processes (stand-in trainer): two at once on one store, SIGTERM and Ctrl-C."""
import ctypes
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from selectivity import claims
from selectivity.cli import main
from selectivity.sweep import SweepFolder, executors, load_sweep_spec
from selectivity.sweep.layout import open_sweep
from selectivity.sweep.run_state import TIMING_FILE
from selectivity.sweep.worker import RunTask
from tests.sweep_fake_trainer import train_run
from tests.test_sweep_driver import FAKE, write_spec

REPO = Path(__file__).resolve().parents[1]
SYS_TGKILL = {"x86_64": 234, "aarch64": 131}.get(platform.machine())  # Linux syscall numbers


def cli_sweep(spec: Path, store: Path, *extra: str, epoch_seconds: float = 0.0,
              new_session: bool = False, unbuffered: bool = False) -> subprocess.Popen:
    """`selectivity sweep` with the fake trainer; new_session: in its own process group (a batch job);
    unbuffered: its stdout arrives line by line."""
    environment = {**os.environ, "FAKE_EPOCH_SECONDS": str(epoch_seconds)}
    if unbuffered:
        environment["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen([sys.executable, "-m", "selectivity", "sweep", str(spec), "--store", str(store),
                             "--trainer", FAKE, "--no-progress", "--stale-after", "30", *extra],
                            cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=new_session)


def test_two_sweep_processes_run_every_run_exactly_once(tmp_path):
    spec = write_spec(tmp_path, alphas="[-1, 0, 1]", seeds=2, epochs=2)
    # 3 s a run: one process alone would need 18 s for the six, far longer than the other one takes to start
    processes = [cli_sweep(spec, tmp_path / "sweep", "--workers", "0", epoch_seconds=1.5) for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    folder = SweepFolder(tmp_path / "sweep")
    starts = [event["run_id"] for event in folder.read_events() if event["event"] == "start"]
    assert len(starts) == 6 and len(set(starts)) == 6
    assert len({event["pid"] for event in folder.read_events()}) == 2  # both processes did work
    assert pd.read_parquet(folder.results_parquet)["run_id"].nunique() == 6


def wait_for_first_checkpoint(process: subprocess.Popen, runs_dir: Path) -> Path:
    """The run folder that wrote the sweep's first checkpoint (hang guard: 120 s)."""
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        found = list(runs_dir.glob("*/seed_0/checkpoint.pt"))
        if found:
            return found[0].parent
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint appeared; sweep output: {process.communicate()}")


def signal_another_thread(pid: int, signum: int) -> None:
    """Send a signal to one non-main thread of process `pid` (Linux tgkill), as the kernel may."""
    if SYS_TGKILL is None or not sys.platform.startswith("linux"):
        pytest.skip(f"tgkill's syscall number on {platform.machine()} is not known here")
    libc = ctypes.CDLL(None, use_errno=True)
    threads = sorted((int(name) for name in os.listdir(f"/proc/{pid}/task") if int(name) != pid), reverse=True)
    for thread_id in threads:  # a thread that just ended (ESRCH): try the next one
        if libc.syscall(SYS_TGKILL, pid, thread_id, signum) == 0:
            return
    raise AssertionError(f"no thread of {pid} besides the main one took the signal: {threads}")


def started(store: Path) -> list[str]:
    return [event["run_id"] for event in SweepFolder(store).read_events() if event["event"] == "start"]


def test_sigterm_to_the_process_group_stops_the_running_run_and_starts_no_queued_one(tmp_path, monkeypatch):
    """A scheduler's SIGTERM reaches the driver and its workers: exit 143, the queue stops, the run resumes."""
    spec = write_spec(tmp_path, alphas="[-1, 0, 1]", seeds=1, epochs=30)
    store = tmp_path / "sweep"
    process = cli_sweep(spec, store, "--workers", "1", epoch_seconds=0.2, new_session=True)
    run_dir = wait_for_first_checkpoint(process, store / "runs")
    os.killpg(process.pid, signal.SIGTERM)
    output = process.communicate(timeout=60)  # a hang guard, not a timing assertion
    assert process.returncode == 143 and "Resume with: selectivity sweep" in output[1], output
    assert len(started(store)) == 1, output  # the queued runs never started
    assert not (run_dir / "done.json").exists() and not (run_dir / "claim.json").exists(), output
    assert [path.parent for path in store.glob("runs/*/seed_0/metrics.jsonl")] == [run_dir], output
    monkeypatch.setenv("FAKE_EPOCH_SECONDS", "0")
    assert main(["sweep", str(spec), "--store", str(store), "--workers", "0", "--trainer", FAKE, "--no-progress"]) == 0
    history = json.loads((run_dir / TIMING_FILE).read_text())["attempts"]
    assert [a["resumed"] for a in history] == [False, True] and history[0]["outcome"] == "interrupted"
    epochs = [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(30)) and len(started(store)) == 4  # resumed once, the other two run once


def test_ctrl_c_delivered_to_another_thread_of_the_driver_still_stops_the_sweep(tmp_path):
    """The kernel may hand SIGINT to any thread; the driver's main thread, asleep waiting for the
    run, must still act on it (it used to train the run to the end first, and could exit 0)."""
    spec = write_spec(tmp_path, alphas="[0, 1]", seeds=1, epochs=30)
    store = tmp_path / "sweep"
    process = cli_sweep(spec, store, "--workers", "1", epoch_seconds=0.2)
    run_dir = wait_for_first_checkpoint(process, store / "runs")
    signal_another_thread(process.pid, signal.SIGINT)
    output = process.communicate(timeout=60)
    assert process.returncode == 130 and "Resume with: selectivity sweep" in output[1], output
    assert not (run_dir / "done.json").exists() and len(started(store)) == 1, output
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) < 30, output


def read_until(process: subprocess.Popen, text: str) -> list[str]:
    """The sweep's stdout lines up to the first holding `text` (or all of them, if it exits first)."""
    lines = []
    for line in process.stdout:
        lines.append(line)
        if text in line:
            break
    return lines


def test_a_sweep_waits_for_every_run_another_process_holds_before_writing_its_table(tmp_path):
    """This process holds two runs as another sweep would and finishes them one at a time: the
    sweep must wait for both (it used to forget the second, print "2 of 3 done" and exit 0 with
    a table lacking it), and its table must hold all three runs."""
    spec = write_spec(tmp_path, alphas="[-1, 0, 1]", seeds=1, epochs=2)
    store = tmp_path / "sweep"
    _, _, runs, _ = open_sweep(spec, store)
    held = [claims.try_claim(run.path) for run in runs[:2]]
    process = cli_sweep(spec, store, "--workers", "0", unbuffered=True)
    try:
        with held[1].kept_alive(1.0):  # heartbeats: the sweep must see both runs held, however slow it starts
            with held[0].kept_alive(1.0):
                output = read_until(process, "waiting for 2 run(s)")
                train_run(runs[0].config, runs[0].path)  # the first held run finishes ...
            output += read_until(process, "waiting for 1 run(s)")  # ... the sweep must still wait for the second
            train_run(runs[1].config, runs[1].path)
        rest = process.communicate(timeout=120)
    finally:
        process.kill()
    output = "".join(output) + rest[0] + rest[1]
    assert process.returncode == 0 and "3 of 3 done" in output, output
    assert started(store) == [runs[2].run_id], output  # nothing trained twice
    table = pd.read_parquet(store / "results.parquet")
    assert sorted(table["run_id"].unique()) == sorted(run.run_id for run in runs), output


def test_a_pool_worker_stops_once_and_then_starts_no_queued_run(tmp_path, monkeypatch):
    """The pool's workers catch BaseException around each run and take the next: after SIGTERM
    interrupted one run, a worker must hand back the runs still queued to it without starting them."""
    monkeypatch.setattr(executors, "_stopping", False)
    monkeypatch.setattr(executors, "_task_running", True)
    with pytest.raises(KeyboardInterrupt):
        executors._stop_on_terminate(signal.SIGTERM, None)
    executors._stop_on_terminate(signal.SIGTERM, None)  # the second SIGTERM (group + driver) lets cleanup finish
    monkeypatch.setattr(executors, "_task_running", False)
    spec = load_sweep_spec(write_spec(tmp_path, alphas="[0]", seeds=1))
    folder = SweepFolder(tmp_path / "sweep")
    [run] = folder.runs_for(spec)
    task = RunTask(config=run.config, path=str(run.path), run_id=run.run_id, alpha_label=run.alpha_label,
                   sweep_path=str(folder.path), trainer=FAKE)
    assert executors._run_in_worker(task).status == "interrupted"
    assert not run.path.exists() and started(folder.path) == []


def test_a_stopped_pool_worker_exits_on_its_own_rather_than_being_killed(tmp_path, monkeypatch):
    """After a stop its run unwinds and reports back; the worker must then leave (exit code 0), not
    idle until the grace period ends and be SIGKILLed (exit code -9), which made every stop take 30 s."""
    import threading

    from selectivity.sweep import stopping

    monkeypatch.setenv("FAKE_EPOCH_SECONDS", "0.2")  # before the pool spawns: its worker inherits it
    monkeypatch.setattr(stopping, "_received", None)
    spec = load_sweep_spec(write_spec(tmp_path, alphas="[0]", seeds=1, epochs=30))
    folder = SweepFolder(tmp_path / "sweep")
    [run] = folder.runs_for(spec)
    task = RunTask(config=run.config, path=str(run.path), run_id=run.run_id, alpha_label=run.alpha_label,
                   sweep_path=str(folder.path), trainer=FAKE)
    executor = executors.LocalExecutor(workers=1)
    workers = []

    def stop_after_the_first_checkpoint():
        deadline = time.time() + 120  # hang guard
        while not run.directory.checkpoint_path.exists() and time.time() < deadline:
            time.sleep(0.05)
        workers.extend(executor._pool._processes.values())
        stopping._received = signal.SIGTERM  # what the driver's signal handler records

    helper = threading.Thread(target=stop_after_the_first_checkpoint)
    helper.start()
    with pytest.raises(stopping.SweepInterrupted):
        list(executor.run([task]))
    helper.join()
    assert len(workers) == 1 and [worker.exitcode for worker in workers] == [0]
    attempts = json.loads((run.path / TIMING_FILE).read_text())["attempts"]
    assert [attempt["outcome"] for attempt in attempts] == ["interrupted"]  # the run unwound, then the worker left


def test_a_table_missing_a_run_counted_done_is_never_written(tmp_path, monkeypatch):
    """The last line of defence against a partial table replacing a complete one."""
    from selectivity.sweep import driver

    spec = write_spec(tmp_path, alphas="[-1, 0]", seeds=1, epochs=2)
    store = tmp_path / "sweep"
    build = driver.build_results
    monkeypatch.setattr(driver, "build_results", lambda runs, folder, analyses: build(runs[:1], folder, analyses))
    assert main(["sweep", str(spec), "--store", str(store), "--workers", "0", "--trainer", FAKE, "--no-progress"]) == 2
    assert not (store / "results.parquet").exists() and not (store / "results.csv").exists()


def process_has_exited(pid: int) -> bool:
    """Gone, or a zombie nobody reaped yet (its parent, the driver, is dead)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_workers_exit_when_their_driver_is_sigkilled(tmp_path):
    """A SIGKILLed driver cannot stop its pool: each worker sees its parent gone, unwinds its run
    (the claim is released, the checkpoint stays) and exits, instead of training on unobserved."""
    spec = write_spec(tmp_path, alphas="[-1, 0]", seeds=1, epochs=600)
    store = tmp_path / "sweep"
    process = cli_sweep(spec, store, "--workers", "2", epoch_seconds=0.2, new_session=True)
    run_dir = wait_for_first_checkpoint(process, store / "runs")
    worker = claims.read_claim(run_dir)["pid"]
    assert worker != process.pid
    process.kill()  # the driver alone, as an out-of-memory killer would
    process.wait(timeout=60)  # not communicate(): the workers hold its pipes open until they exit
    deadline = time.time() + 180  # a hang guard, not a timing assertion
    while time.time() < deadline and not process_has_exited(worker):
        time.sleep(0.1)
    assert process_has_exited(worker), "the worker outlived its driver"
    process.communicate(timeout=60)
    assert not (run_dir / "claim.json").exists() and (run_dir / "checkpoint.pt").exists()
    attempts = json.loads((run_dir / TIMING_FILE).read_text())["attempts"]
    assert [attempt["outcome"] for attempt in attempts] == ["interrupted"]
