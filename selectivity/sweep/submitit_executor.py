"""The submitit executor: a sweep's runs as one job array on SLURM (or submitit's local processes).

submitit (extra `slurm`) pickles `run_task` with each RunTask and submits them with
`map_array`, i.e. one `sbatch --array` on SLURM; `cluster="local"` runs the very same
pickled tasks as local subprocesses (what CI tests), `cluster="debug"` in this process.
Every task runs `run_task`, so claims, resume and the done/failed records are the ones of
the other executors: a task that is killed or preempted leaves its checkpoint and a claim
whose process is gone; the driver counts it "crashed" and submits it again, and the new
task resumes from the checkpoint. On SLURM a preemption or time-out signal makes submitit
requeue the task itself (the task is `Checkpointable`), which resumes the same way.
Every node must import selectivity and see the sweep folder at the same path.
"""
import time
from typing import Iterator

from selectivity.errors import SelectivityError
from selectivity.sweep import stopping
from selectivity.sweep.worker import RunOutcome, RunTask, run_task

CLUSTERS = ("slurm", "local", "debug")


def import_submitit():
    try:
        import submitit
    except ImportError:
        raise SelectivityError("the submitit executor needs submitit; install it with "
                               "pip install 'selectivity[slurm]'") from None
    return submitit


def _checkpointable_task(submitit):
    class SweepTask(submitit.helpers.Checkpointable):
        """run_task, requeued by submitit on preemption or time-out (the run resumes from its checkpoint)."""

        def __call__(self, task: RunTask) -> RunOutcome:
            return run_task(task)

    return SweepTask


class SubmititExecutor:
    """Submits each round of runs as one job array and yields outcomes as the tasks finish.

    Args:
        folder: where submitit keeps its pickles and the tasks' logs (on the shared filesystem).
        cluster: "slurm", "local", "debug", or None (SLURM when `sbatch` is here, else local).
        cpus_per_run: CPUs (and torch threads) per task.
        gpus_per_run: GPUs per task (SLURM gpus_per_node).
        timeout_min: each task's time limit in minutes.
        partition: the SLURM partition (None: the cluster's default).
        array_parallelism: at most this many tasks of an array run at once.
        poll_seconds: how often finished tasks are looked for.
    """

    def __init__(self, folder, cluster: str | None = None, cpus_per_run: int = 2, gpus_per_run: int = 0,
                 timeout_min: int = 60, partition: str | None = None, array_parallelism: int = 256,
                 poll_seconds: float = 1.0):
        submitit = import_submitit()
        if cluster is not None and cluster not in CLUSTERS:
            raise SelectivityError(f"unknown submitit cluster {cluster!r}; expected one of {', '.join(CLUSTERS)}")
        for name, value, low in (("cpus per run", cpus_per_run, 1), ("gpus per run", gpus_per_run, 0),
                                 ("timeout minutes", timeout_min, 1), ("array parallelism", array_parallelism, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SelectivityError(f"submitit {name} = {value!r}; expected an integer >= {low}")
        self.executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
        parameters = {"cpus_per_task": cpus_per_run, "timeout_min": timeout_min, "slurm_array_parallelism":
                      array_parallelism, "name": "selectivity-sweep"}
        if gpus_per_run:
            parameters["gpus_per_node"] = gpus_per_run
        if partition:
            parameters["slurm_partition"] = partition
        self.executor.update_parameters(**parameters)
        self.cluster = self.executor.cluster
        self.threads_per_run = cpus_per_run
        self.poll_seconds = poll_seconds
        self._task = _checkpointable_task(submitit)()
        self.jobs = []  # the last round's jobs (tests kill one)

    def device_for(self, index: int) -> str | None:
        return None  # SLURM sets CUDA_VISIBLE_DEVICES for each task

    def run(self, tasks: list[RunTask]) -> Iterator[RunOutcome]:
        if not tasks:
            return
        jobs = self.jobs = self.executor.map_array(self._task, tasks)
        pending = dict(zip(jobs, tasks))
        try:
            while pending:
                stopping.check()
                finished = [job for job in pending if job.done()]
                if not finished:
                    time.sleep(self.poll_seconds)
                for job in finished:
                    yield self._outcome(job, pending.pop(job))
        except (KeyboardInterrupt, GeneratorExit):
            for job in pending:  # their runs keep their checkpoints; a claim of a dead task goes stale
                job.cancel(check=False)
            raise

    @staticmethod
    def _outcome(job, task: RunTask) -> RunOutcome:
        try:
            return job.result()
        except Exception as error:  # killed, preempted for good, out of memory, node lost
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            return RunOutcome(task.run_id, "crashed", f"submitit task {job.job_id} died ({type(error).__name__}: "
                                                      f"{first_line})")

    def close(self) -> None:
        pass
