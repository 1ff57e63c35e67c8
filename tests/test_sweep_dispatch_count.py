"""The sweep driver hands the executor only the runs that are not done (counted, without Ray).

An executor that records every task it is given runs the tasks inline, with a trainer that
counts its calls. A run done before the sweep, or finished by another worker while the
driver waited for it, must reach neither the executor nor the trainer.
"""
import pytest

from selectivity import claims
from selectivity.sweep import SweepFolder, load_sweep_spec, run_sweep
from selectivity.sweep.executors import InlineExecutor
from tests import sweep_fake_trainer

COUNTING = "tests.test_sweep_dispatch_count:counting_train_run"
TRAINED: list[str] = []  # run folders, one entry per trainer call


def counting_train_run(config, run_dir, progress=True, heartbeat=None):
    TRAINED.append(str(run_dir))
    return sweep_fake_trainer.train_run(config, run_dir, progress, heartbeat)


class RecordingExecutor(InlineExecutor):
    """Inline, recording the run id of every task dispatched; `after_round` runs after each round."""

    def __init__(self, after_round=None):
        super().__init__()
        self.dispatched: list[str] = []
        self.after_round = after_round

    def run(self, tasks):
        self.dispatched += [task.run_id for task in tasks]
        yield from super().run(tasks)
        if self.after_round is not None:
            self.after_round()


@pytest.fixture
def grid(tmp_path):
    TRAINED.clear()
    (tmp_path / "base.toml").write_text("[train]\nepochs = 2\n")
    spec = tmp_path / "grid.toml"
    spec.write_text('name = "grid"\nbase = "base.toml"\nalphas = [-1, 0]\nseeds = 2\n')
    loaded, folder = load_sweep_spec(spec), SweepFolder(tmp_path / "sweep")
    return loaded, folder, folder.runs_for(loaded)


def test_runs_done_before_the_sweep_are_not_dispatched(grid):
    loaded, folder, runs = grid
    for run in (runs[0], runs[2]):  # finished earlier (another sweep, or `selectivity train`)
        sweep_fake_trainer.train_run(run.config, run.path)
    executor = RecordingExecutor()
    result = run_sweep(loaded.name, folder, runs, executor, progress=False, trainer=COUNTING, poll_seconds=0.05)
    not_done = [runs[1], runs[3]]
    assert (result.done, result.exit_code) == (4, 0)
    assert executor.dispatched == [run.run_id for run in not_done]
    assert TRAINED == [str(run.path.resolve()) for run in not_done]


def test_a_run_another_worker_finishes_while_the_driver_waits_is_not_dispatched_again(grid):
    loaded, folder, runs = grid
    held = runs[1]
    claim = claims.try_claim(held.path)  # a live worker (this process) holds it: the driver gets "busy"

    def other_worker_finishes():
        if claim.is_held():
            sweep_fake_trainer.train_run(held.config, held.path)
            claim.release()

    executor = RecordingExecutor(after_round=other_worker_finishes)
    result = run_sweep(loaded.name, folder, runs, executor, progress=False, trainer=COUNTING, poll_seconds=0.05)
    assert (result.done, result.exit_code) == (4, 0)
    assert executor.dispatched == [run.run_id for run in runs]  # each run once: the held one came back busy
    assert sorted(TRAINED) == sorted(str(run.path.resolve()) for run in runs if run is not held)
