"""The Ray executor: each run is a Ray task; several share a GPU (num_gpus = 1/runs_per_gpu).

Ray is an optional extra (`pip install selectivity[ray]`). Every Ray worker must be able to
import selectivity and see the sweep folder at the same path (a shared filesystem), since
runs write straight into their run folders; claims keep two tasks off the same run even
across clusters.
"""
from typing import Iterator

from selectivity.errors import SelectivityError
from selectivity.sweep import stopping
from selectivity.sweep.worker import RunOutcome, RunTask, run_task


def import_ray():
    try:
        import ray
    except ImportError:
        raise SelectivityError("the ray executor needs Ray; install it with pip install 'selectivity[ray]'") from None
    return ray


class RayExecutor:
    """Runs tasks on a Ray cluster (or a local instance it starts and later shuts down)."""

    def __init__(self, address: str | None = None, runs_per_gpu: int = 4, cpus_per_run: int | None = None):
        ray = self.ray = import_ray()
        self._started_ray = not ray.is_initialized()
        if self._started_ray:
            if address:
                ray.init(address=address)
            else:
                ray.init(include_dashboard=False)
        resources = ray.cluster_resources()
        gpus, cpus = resources.get("GPU", 0), int(resources.get("CPU", 1))
        if runs_per_gpu < 1:
            raise SelectivityError(f"--runs-per-gpu {runs_per_gpu}; expected >= 1")
        cpus_per_run = cpus_per_run or (1 if gpus else 2)
        self.threads_per_run = max(1, min(cpus_per_run, cpus))  # a task asking for more CPUs never runs
        self.options = {"num_cpus": self.threads_per_run, "num_gpus": 1 / runs_per_gpu if gpus else 0,
                        "max_retries": 0}  # a crashed run is the driver's to retry (and resume)
        self.remote = ray.remote(run_task)

    def device_for(self, index: int) -> str | None:
        return None  # Ray sets CUDA_VISIBLE_DEVICES for each task

    def run(self, tasks: list[RunTask]) -> Iterator[RunOutcome]:
        ray = self.ray
        references = {self.remote.options(**self.options).remote(task): task for task in tasks}
        pending = list(references)
        try:
            while pending:
                stopping.check()  # short waits: a stop signal may reach another thread (sweep/stopping.py)
                ready, pending = ray.wait(pending, num_returns=1, timeout=stopping.POLL_SECONDS)
                if not ready:
                    continue
                try:
                    yield ray.get(ready[0])
                except ray.exceptions.RayError as error:  # the worker died, or the task could not run
                    task = references[ready[0]]
                    yield RunOutcome(task.run_id, "crashed", f"ray task failed ({type(error).__name__}: "
                                     f"{str(error).splitlines()[0] if str(error) else ''})")
        except (KeyboardInterrupt, GeneratorExit):
            for reference in pending:
                ray.cancel(reference, force=True)
            raise

    def close(self) -> None:
        if self._started_ray:
            self.ray.shutdown()
