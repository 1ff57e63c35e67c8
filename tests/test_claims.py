"""Run claims: exclusive, stale when their worker is gone, taken over exactly once under races."""
import contextlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest

from selectivity import claims

FOLDERS = 24


def test_claim_is_exclusive_until_released(tmp_path):
    first = claims.try_claim(tmp_path / "run")
    assert first is not None and first.is_held()
    assert claims.try_claim(tmp_path / "run") is None  # our own pid is alive: not stale
    record = claims.read_claim(tmp_path / "run")
    assert record["pid"] == os.getpid() and record["token"] == first.token and record["age"] < 60
    first.release()
    assert claims.read_claim(tmp_path / "run") is None
    assert claims.try_claim(tmp_path / "run") is not None


def _claim_in_subprocess(run_dir, then: str) -> subprocess.Popen:
    code = f"from selectivity import claims; assert claims.try_claim({str(run_dir)!r}); {then}"
    return subprocess.Popen([sys.executable, "-c", code])


def test_claim_of_an_exited_process_is_stale(tmp_path):
    _claim_in_subprocess(tmp_path, "pass").wait()
    assert not claims.claim_is_stale({**claims.read_claim(tmp_path), "pid": os.getpid(), "process_start": None})
    assert claims.claim_is_stale(claims.read_claim(tmp_path))
    assert claims.try_claim(tmp_path) is not None


def test_claim_of_a_killed_unreaped_process_is_stale(tmp_path):
    process = _claim_in_subprocess(tmp_path, "import time; time.sleep(60)")
    while claims.read_claim(tmp_path) is None or "pid" not in claims.read_claim(tmp_path):
        time.sleep(0.05)
    assert claims.try_claim(tmp_path) is None  # alive: busy
    os.kill(process.pid, signal.SIGKILL)
    time.sleep(0.3)  # not waited for: a zombie, which os.kill(pid, 0) still finds
    try:
        assert claims.try_claim(tmp_path) is not None
    finally:
        process.wait()


def test_reused_pid_and_old_heartbeat_are_stale(tmp_path):
    claim = claims.try_claim(tmp_path)
    record = json.loads(claim.path.read_text())
    reused = {**record, "age": 0.0, "process_start": "1"}  # same pid, another process
    assert claims.claim_is_stale(reused)
    elsewhere = {**record, "age": 5.0, "host": "another-host"}  # pid unknowable: heartbeat decides
    assert not claims.claim_is_stale(elsewhere, stale_after=10.0)
    assert claims.claim_is_stale(elsewhere, stale_after=1.0)
    old = time.time() - 3600
    os.utime(claim.path, (old, old))
    assert claims.try_claim(tmp_path, stale_after=600.0) is not None  # an hour without heartbeat


def test_heartbeat_refreshes_and_detects_takeover(tmp_path):
    claim = claims.try_claim(tmp_path)
    old = time.time() - 100
    os.utime(claim.path, (old, old))
    with claim.kept_alive(interval=0.05) as heartbeat:
        time.sleep(0.4)
        assert claims.read_claim(tmp_path)["age"] < 5  # the background thread refreshed it
        heartbeat()
        thief = claims.try_claim(tmp_path, stale_after=0.0)  # every claim is stale at 0 s
        assert thief is not None
        with pytest.raises(claims.ClaimLost):
            claim.refresh()
        time.sleep(0.2)
        with pytest.raises(claims.ClaimLost):
            heartbeat()
    assert thief.is_held()  # leaving kept_alive released nothing that was not ours


def _race(root: str, barrier, results, stale_after: float) -> None:  # in a spawned process
    barrier.wait()
    won = [index for index in range(FOLDERS)
           if claims.try_claim(os.path.join(root, f"run{index}"), stale_after=stale_after) is not None]
    results.put((os.getpid(), won))


def test_racing_processes_claim_each_run_exactly_once(tmp_path):
    """Two processes race over folders, half unclaimed, half holding a claim abandoned an hour ago."""
    old = time.time() - 3600
    for index in range(0, FOLDERS, 2):
        stale = claims.try_claim(tmp_path / f"run{index}")
        os.utime(stale.path, (old, old))
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    processes = [context.Process(target=_race, args=(str(tmp_path), barrier, results, 600.0)) for _ in range(2)]
    for process in processes:
        process.start()
    won = [results.get(timeout=120)[1] for _ in processes]
    for process in processes:
        process.join()
    assert sorted(index for indices in won for index in indices) == list(range(FOLDERS))


def _claim_without_a_shared_lock(run_dir: str, barrier, results) -> None:  # in a forked process
    """A claimer whose flock excludes no one (another host on NFS) and who reads "unclaimed" at
    the very moment every other claimer does: only O_EXCL can stop all of them winning."""
    claims._locked = lambda _: contextlib.nullcontext()
    read_claim = claims.read_claim

    def read_then_wait_for_the_others(path):
        found = read_claim(path)
        barrier.wait()
        return found

    claims.read_claim = read_then_wait_for_the_others
    results.put(claims.try_claim(run_dir) is not None)


def test_of_many_claimers_that_all_saw_the_run_unclaimed_exactly_one_wins(tmp_path):
    claimers = 6
    context = multiprocessing.get_context("fork")  # cheap: the claimers need nothing but this module
    barrier, results = context.Barrier(claimers), context.Queue()
    processes = [context.Process(target=_claim_without_a_shared_lock, args=(str(tmp_path), barrier, results))
                 for _ in range(claimers)]
    for process in processes:
        process.start()
    won = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join()
    assert sorted(won) == [False] * (claimers - 1) + [True]
