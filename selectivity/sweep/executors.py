"""Executors: run sweep tasks (selectivity.sweep.worker.run_task) and yield outcomes as they finish.

    local   a pool of spawned processes, several runs at once (default: one per 2 CPU cores
            on CPU, RUNS_PER_GPU per GPU on CUDA); each run gets cores/workers torch threads
    inline  workers = 0: runs one after another in this process (debugging, profiling)
    ray     Ray tasks with fractional GPUs (num_gpus = 1/runs_per_gpu); address "auto" joins a
            running cluster, no address starts a local Ray instance
    submitit  a SLURM job array per round of runs (or submitit's local processes), see
            selectivity.sweep.submitit_executor

Every executor has run(tasks) -> iterator of RunOutcome, threads_per_run, device_for(index)
and close(). A worker process that dies (SIGKILL, out-of-memory killer) yields a "crashed"
outcome; the driver decides whether to retry.
"""
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import connection, get_context
from typing import Iterator

from selectivity.errors import SelectivityError
from selectivity.sweep import stopping
from selectivity.sweep.worker import RunOutcome, RunTask, run_task

RUNS_PER_GPU = 4  # on an H200, 8 concurrent ResNet20 runs gave ~1.7x the throughput of one
CORES_PER_CPU_RUN = 2


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cuda_device_count() -> int:
    import torch  # the driver imports torch only to count GPUs

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def default_workers(runs_per_gpu: int = RUNS_PER_GPU) -> int:
    """Concurrent runs on this machine: runs_per_gpu per GPU, else one per 2 CPU cores."""
    gpus = cuda_device_count()
    return gpus * runs_per_gpu if gpus else max(1, cpu_count() // CORES_PER_CPU_RUN)


def _crashed(task: RunTask, error: BaseException) -> RunOutcome:
    return RunOutcome(task.run_id, "crashed", f"worker process died ({type(error).__name__}: {error})")


# --- local processes -------------------------------------------------------------------------
STOP_GRACE_SECONDS = 30.0  # a worker still busy this long after SIGTERM is killed (its run resumes)
_task_running = False
_stopping = False


def _stop_on_terminate(signum, frame):
    global _stopping
    if _stopping:
        return  # a second SIGTERM (the group's and the driver's) must not break the first one's cleanup
    _stopping = True
    if _task_running:
        raise KeyboardInterrupt  # unwinds the run: its claim is released, its checkpoint stays
    sys.exit(0)


PARENT_POLL_SECONDS = 1.0  # how often a worker looks whether its driver is still there


def _exit_when_parent_dies(parent: int) -> None:
    """A worker whose driver died (SIGKILL, a lost session) would sit idle, or train a run nobody
    collects: stop like on SIGTERM (the run unwinds, keeps its checkpoint, releases its claim)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(STOP_GRACE_SECONDS)
    os._exit(1)  # the run did not unwind in time; it resumes from its last checkpoint


def _worker_init(driver: int) -> None:
    # Ctrl-C reaches the whole process group; only the driver acts on it, and stops the workers
    # with SIGTERM, so a run is never interrupted twice in the middle of its cleanup.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_on_terminate)
    # the driver's pid comes from the driver: a worker still starting up when the driver died has
    # already been re-parented, and its own getppid() would name the new parent and never change
    threading.Thread(target=_exit_when_parent_dies, args=(driver,), name="parent watch", daemon=True).start()


def _run_in_worker(task: RunTask) -> RunOutcome:
    """run_task, except in a worker told to stop: the pool would otherwise start its next run."""
    global _task_running
    if _stopping:
        return RunOutcome(task.run_id, "interrupted", "not started: the worker was stopping")
    _task_running = True
    try:
        return run_task(task)
    except KeyboardInterrupt:
        return RunOutcome(task.run_id, "interrupted", "stopped by SIGTERM; resumes from its checkpoint")
    finally:
        _task_running = False


class LocalExecutor:
    """A pool of `workers` spawned processes (spawn: CUDA cannot be forked).

    Runs are submitted one per free worker, never queued ahead in the pool, so a stopped
    sweep starts nothing new.
    """

    def __init__(self, workers: int):
        if workers < 1:
            raise SelectivityError(f"--workers {workers} for the local pool; expected >= 1 (0 runs inline)")
        self.workers = workers
        self.gpus = cuda_device_count()
        self.threads_per_run = max(1, cpu_count() // workers)
        self._pool: ProcessPoolExecutor | None = None

    def device_for(self, index: int) -> str | None:
        """Spread runs over GPUs round-robin; None keeps the config's device."""
        return f"cuda:{index % self.gpus}" if self.gpus > 1 else None

    def _submit(self, task: RunTask) -> tuple[Future, ProcessPoolExecutor]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"), initializer=_worker_init,
                                             initargs=(os.getpid(),))
        return self._pool.submit(_run_in_worker, task), self._pool

    def _outcome(self, future: Future, task: RunTask, pool: ProcessPoolExecutor) -> RunOutcome:
        try:
            outcome = future.result()
        except BrokenProcessPool as error:  # a worker was killed: every task in flight is lost
            if self._pool is pool:  # the next submit starts a fresh pool
                pool.shutdown(wait=False)
                self._pool = None
            return _crashed(task, error)
        except Exception as error:  # run_task itself failed (e.g. the disk is full)
            return _crashed(task, error)
        if outcome.status == "interrupted":  # someone SIGTERMed this worker alone: retried like a crash
            return RunOutcome(task.run_id, "crashed", f"worker process was stopped ({outcome.reason})")
        return outcome

    def run(self, tasks: list[RunTask]) -> Iterator[RunOutcome]:
        waiting, in_flight = list(tasks), {}
        try:
            while waiting or in_flight:
                stopping.check()
                while waiting and len(in_flight) < self.workers:
                    task = waiting.pop(0)
                    future, pool = self._submit(task)
                    in_flight[future] = (task, pool)
                # short waits: the main thread must look at stop requests (see selectivity.sweep.stopping)
                finished, _ = wait(in_flight, timeout=stopping.POLL_SECONDS, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield self._outcome(future, *in_flight.pop(future))
        except (KeyboardInterrupt, GeneratorExit):
            self._stop()
            raise

    def _stop(self) -> None:
        """SIGTERM every worker (its run unwinds and keeps its checkpoint); kill one that hangs."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        processes = [process for process in list(getattr(pool, "_processes", {}).values()) if process.is_alive()]
        for process in processes:
            process.terminate()  # SIGTERM -> KeyboardInterrupt inside the run (see _worker_init)
        # A worker whose run unwound reports back and then waits for more work: the pool's shutdown
        # (without waiting, here) tells it to exit once its result is in. Without it every worker
        # sat out the whole grace period and was killed.
        manager = getattr(pool, "_executor_manager_thread", None)  # shutdown(wait=False) forgets it
        pool.shutdown(wait=False, cancel_futures=True)
        # Wait on the workers' sentinels rather than join them: the pool's manager thread joins
        # (reaps) them too, and two threads reaping one child can lose its exit code.
        pending = {process.sentinel: process for process in processes}
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while pending and time.monotonic() < deadline:
            for sentinel in connection.wait(list(pending), timeout=max(0.0, deadline - time.monotonic())):
                pending.pop(sentinel)
        for process in pending.values():
            process.kill()  # the run resumes from its last checkpoint; its claim goes stale with it
        if manager is not None:
            manager.join()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class InlineExecutor:
    """Runs each task in this process, one after another.

    Each run gets every core this process may use as torch threads, as a one-worker pool
    would: a CPU run's numbers depend on its thread count, so the count comes from the
    executor, never from the caller's OMP_NUM_THREADS (the process's own setting is restored
    after each run).
    """

    def __init__(self):
        self.threads_per_run = cpu_count()

    def device_for(self, index: int) -> str | None:
        return None

    def run(self, tasks: list[RunTask]) -> Iterator[RunOutcome]:
        for task in tasks:
            stopping.check()  # a stop whose exception was lost still stops the queue
            torch = sys.modules.get("torch")
            before = torch.get_num_threads() if torch is not None else None
            try:
                outcome = run_task(task)
            finally:
                torch = sys.modules.get("torch")
                if before is not None and torch is not None:
                    torch.set_num_threads(before)
            yield outcome

    def close(self) -> None:
        pass


def make_executor(name: str, workers: int | None = None, address: str | None = None,
                  runs_per_gpu: int = RUNS_PER_GPU, cpus_per_run: int | None = None,
                  submitit_options: dict | None = None):
    """The executor named by `selectivity sweep --executor`.

    Args:
        name: "local" or "ray".
        workers: local: concurrent runs (None = default_workers(), 0 = inline).
        address: ray: cluster address ("auto" joins a running cluster; None starts one).
        runs_per_gpu: concurrent runs sharing one GPU (local default workers; ray num_gpus = 1/k).
        cpus_per_run: ray: CPUs per task (default 1 with GPUs, 2 without); submitit: CPUs per task (default 2).
        submitit_options: submitit: SubmititExecutor's keyword arguments (folder, cluster, ...).
    Returns:
        An executor (see module docstring).
    """
    if name == "local":
        workers = default_workers(runs_per_gpu) if workers is None else workers
        return InlineExecutor() if workers == 0 else LocalExecutor(workers)
    if name == "ray":
        from selectivity.sweep.ray_executor import RayExecutor

        return RayExecutor(address=address, runs_per_gpu=runs_per_gpu, cpus_per_run=cpus_per_run)
    if name == "submitit":
        from selectivity.sweep.submitit_executor import SubmititExecutor

        options = dict(submitit_options or {})
        if cpus_per_run is not None:
            options["cpus_per_run"] = cpus_per_run
        return SubmititExecutor(**options)
    raise SelectivityError(f"unknown executor {name!r}; expected 'local', 'ray' or 'submitit'")
