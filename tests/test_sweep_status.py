"""`selectivity status`: every state a run folder can be in, progress and the time-left estimate."""
import json

import pytest

from selectivity import claims
from selectivity.cli import main
from selectivity.sweep import SweepFolder, format_status, sweep_status
from selectivity.sweep.run_state import TIMING_FILE, finish_attempt, start_attempt
from selectivity.sweep.status import seconds_left
from tests import sweep_fake_trainer as fake
from tests.test_sweep_results import make_runs


def set_timing(run, seconds: float) -> None:
    (run.path / TIMING_FILE).write_text(json.dumps({"attempts": [
        {"host": "h", "pid": 1, "start": 1000.0, "end": 1000.0 + seconds, "outcome": "done", "resumed": False}]}))


def build_sweep(tmp_path):
    """Six runs: done, done, running (claimed by us), failed, corrupt, interrupted; plus one pending."""
    folder = SweepFolder(tmp_path)
    runs = make_runs(folder, alphas=(-1.0, 0.0, 1.0), seeds=(0, 1))
    set_timing(runs[0], 100.0)
    set_timing(runs[1], 300.0)
    for run in runs[2:]:
        run.directory.done_path.unlink()
    held = claims.try_claim(runs[2].path)
    runs[3].directory.mark_failed("loss is nan", 3)
    runs[4].directory.metrics_path.write_text('{"epoch": 1, "al')
    pending = make_runs(folder, alphas=(5.0,), seeds=(0,), epochs=1)[0]
    for path in pending.path.iterdir():
        path.unlink()
    return folder, runs + [pending], held


def test_every_state_is_reported(tmp_path):
    folder, runs, held = build_sweep(tmp_path)
    rows = sweep_status(runs)
    assert [row.shown_state for row in rows] == ["done", "done", "running", "failed", "pending-redo",
                                                 "pending-resume", "pending"]
    assert rows[0].seconds == 100.0 and rows[2].seconds is not None and rows[2].seconds < 60
    assert rows[3].state.detail == "loss is nan (epoch 3)"
    assert "metrics.jsonl" in rows[4].state.detail
    text = format_status("demo", rows)
    assert text.splitlines()[0].startswith("sweep demo: 2 of 7 done, 1 running, 1 failed, 3 pending")
    for row in rows:
        assert any(row.run.run_id in line and row.shown_state in line for line in text.splitlines())
    held.release()
    assert sweep_status(runs)[2].shown_state == "pending-resume"  # the checkpoint stays: it resumes


def test_time_left_uses_done_runs_and_the_runs_in_flight(tmp_path):
    folder, runs, held = build_sweep(tmp_path)
    rows = sweep_status(runs)
    running_for = rows[2].seconds
    # mean 200 s; 3 runs to start (corrupt, interrupted, pending) + the running one's rest; 1 in flight
    assert abs(seconds_left(rows) - (3 * 200 + (200 - running_for))) < 5
    assert "expected time left: about" in format_status("demo", rows)
    no_timings = [row for row in rows if row.state.state != "done"]
    assert seconds_left(no_timings) is None
    assert "unknown until a run is done" in format_status("demo", no_timings)
    held.release()


def test_a_resumed_running_run_counts_its_earlier_attempts(tmp_path):
    folder, runs, held = build_sweep(tmp_path)
    claimed_at = claims.read_claim(runs[2].path)["started"]
    # before this claim: one attempt that ended after 150 s, one killed after 40 s (its last checkpoint)
    (runs[2].path / TIMING_FILE).write_text(json.dumps({"attempts": [
        {"host": "h", "pid": 1, "start": claimed_at - 900, "end": claimed_at - 750, "outcome": "interrupted",
         "resumed": False},
        {"host": "h", "pid": 2, "start": claimed_at - 500, "end": None, "alive": claimed_at - 460, "outcome": None,
         "resumed": True}]}))
    rows = sweep_status(runs)
    assert 190 <= rows[2].seconds < 190 + 60
    # mean of the done runs 200 s: the running run has about 10 s left, not 200
    assert abs(seconds_left(rows) - (3 * 200 + (200 - rows[2].seconds))) < 1
    held.release()


def test_a_running_run_shows_its_checkpointed_epochs_and_the_estimate_uses_them(tmp_path):
    folder, runs, held = build_sweep(tmp_path)
    claimed_at = claims.read_claim(runs[2].path)["started"]
    (runs[2].path / TIMING_FILE).write_text(json.dumps({"attempts": [
        {"host": "h", "pid": 2, "start": claimed_at + 0.01, "end": None, "alive": claimed_at + 0.02,
         "epochs_done": 1, "outcome": None, "resumed": False}]}))
    rows = sweep_status(runs)
    assert rows[2].epochs_done == 1
    line = next(line for line in format_status("demo", rows).splitlines() if line.startswith(runs[2].run_id))
    assert line.endswith("epoch 1 of 2 checkpointed")  # make_runs trains 2 epochs
    # mean of the done runs 200 s; the running run has half of its 2 epochs left: 100 s, whatever its clock says
    assert seconds_left(rows) == pytest.approx(3 * 200 + 100)
    held.release()


def test_an_interrupted_run_counts_only_the_epochs_it_has_left(tmp_path):
    folder, runs, held = build_sweep(tmp_path)
    interrupted = runs[5]  # a checkpoint, no claim: it resumes
    (interrupted.path / TIMING_FILE).write_text(json.dumps({"attempts": [
        {"host": "h", "pid": 2, "start": 0.0, "end": 50.0, "epochs_done": 1, "outcome": "interrupted",
         "resumed": False}]}))
    rows = sweep_status(runs)
    assert rows[5].shown_state == "pending-resume" and rows[5].epochs_done == 1
    line = next(line for line in format_status("demo", rows).splitlines() if line.startswith(interrupted.run_id))
    assert line.endswith("epoch 1 of 2 checkpointed")
    # mean 200 s: corrupt and pending are whole runs, the interrupted one has half of its 2 epochs left
    running_left = 200 - rows[2].seconds
    assert seconds_left(rows) == pytest.approx(2 * 200 + 100 + running_left, abs=1)
    held.release()


def test_checkpointed_epochs_carry_over_to_a_resumed_attempt_but_not_to_a_redo(tmp_path):
    from selectivity.sweep.run_state import epochs_done

    def attempts(*records):
        (tmp_path / TIMING_FILE).write_text(json.dumps({"attempts": [
            {"host": "h", "pid": 1, "start": 0.0, "end": None, "outcome": None, **record} for record in records]}))
        return epochs_done(tmp_path)

    assert attempts({"resumed": False}) is None  # nothing checkpointed yet
    assert attempts({"resumed": False, "epochs_done": 7}, {"resumed": True}) == 7  # resumed, not yet checkpointed
    assert attempts({"resumed": False, "epochs_done": 7}, {"resumed": True, "epochs_done": 9}) == 9
    assert attempts({"resumed": False, "epochs_done": 7}, {"resumed": False}) is None  # a redo starts at epoch 0
    assert attempts({"resumed": False, "epochs_done": 7}, {"resumed": False, "epochs_done": 2}) == 2


@pytest.mark.parametrize("damaged", ['{}', '[]', 'null', '{"attempts": 5}', '{"attempts": [5, {"end": 1.0}]}',
                                     '{"attempts": [{"start": "x"}]}', '{"attem', b"\xff\xfe"])
def test_a_damaged_timing_record_never_stops_a_run_or_status_and_is_kept(tmp_path, capsys, damaged):
    from selectivity.sweep.run_state import epochs_done, training_seconds

    good = {"host": "h", "pid": 1, "start": 10.0, "end": 40.0, "outcome": "done", "resumed": False}
    path = tmp_path / TIMING_FILE
    path.write_bytes(damaged if isinstance(damaged, bytes) else damaged.encode())
    original = path.read_bytes()
    assert training_seconds(tmp_path) is None and epochs_done(tmp_path) is None
    start_attempt(tmp_path, resumed=True)  # what a sweep worker does first
    assert finish_attempt(tmp_path, "done") >= 0
    attempts = json.loads(path.read_text())["attempts"]
    assert [(a["resumed"], a["outcome"]) for a in attempts] == [(True, "done")]
    (kept,) = tmp_path.glob("damaged-*/timing.json")  # moved aside, byte for byte, with a one-line notice
    assert kept.read_bytes() == original and "timing.json is malformed" in capsys.readouterr().out
    # usable attempts beside damaged ones still count
    path.write_text(json.dumps({"attempts": [good, 5, {"start": 50.0, "end": "soon"}]}))
    assert training_seconds(tmp_path) == 30.0


def test_closing_an_attempt_whose_record_was_lost_returns_no_duration(tmp_path):
    start_attempt(tmp_path, resumed=False)
    (tmp_path / TIMING_FILE).write_text("{}")  # damaged while the run trained
    assert finish_attempt(tmp_path, "done") is None


def test_timing_records_each_attempt(tmp_path):
    start_attempt(tmp_path, resumed=False)
    finish_attempt(tmp_path, "done")
    start_attempt(tmp_path, resumed=True)
    attempts = json.loads((tmp_path / TIMING_FILE).read_text())["attempts"]
    assert [(a["resumed"], a["outcome"]) for a in attempts] == [(False, "done"), (True, None)]
    assert attempts[1]["end"] is None and attempts[0]["end"] >= attempts[0]["start"]


def test_status_command_on_a_spec_and_on_a_folder(tmp_path, capsys):
    (tmp_path / "base.toml").write_text("[train]\nepochs = 1\n")
    spec = tmp_path / "s.toml"
    spec.write_text('base = "base.toml"\nalphas = [0, 1]\nseeds = 1\n')
    assert main(["status", str(spec), "--store", str(tmp_path / "sweep")]) == 0
    assert "0 of 2 done" in capsys.readouterr().out
    from selectivity.sweep import load_sweep_spec

    loaded = load_sweep_spec(spec)
    folder = SweepFolder(tmp_path / "sweep")
    runs = folder.runs_for(loaded)
    folder.write_manifest(loaded.name, runs)
    fake.train_run(runs[0].config, runs[0].path)
    assert main(["status", str(tmp_path / "sweep")]) == 0
    output = capsys.readouterr().out
    assert "sweep s: 1 of 2 done" in output and runs[0].run_id in output
    assert main(["status", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err



@pytest.mark.parametrize("damaged", ["{}", "[]", "null", '{"na', '{"name": "s", "runs": [{"alpha_label": "0"}]}',
                                     '{"name": "s", "runs": [{"alpha_label": "0", "config": {"train": {"epochs": -3}}}]}'])
def test_status_of_a_folder_whose_sweep_json_is_damaged_is_one_line_naming_it(tmp_path, capsys, damaged):
    folder = SweepFolder(tmp_path / "sweep")
    folder.path.mkdir()
    folder.manifest_path.write_text(damaged)
    assert main(["status", str(folder.path)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("selectivity status: error:") and len(err.splitlines()) == 1, err
    assert f"{folder.manifest_path} is damaged" in err and "sweep spec instead" in err


def test_collect_writes_the_done_runs_only_and_trains_nothing(tmp_path, capsys):
    (tmp_path / "base.toml").write_text("[train]\nepochs = 2\n")
    spec = tmp_path / "s.toml"
    spec.write_text('base = "base.toml"\nalphas = [0, -1]\nseeds = 2\nanalyses = []\n')
    from selectivity.sweep import load_sweep_spec

    folder = SweepFolder(tmp_path / "sweep")
    runs = folder.runs_for(load_sweep_spec(spec))
    for run in runs:
        fake.train_run(run.config, run.path)
    unfinished = runs[3]
    unfinished.directory.done_path.unlink()  # trained but not finished: a sweep still on it
    before = sorted(p.name for p in unfinished.path.iterdir())
    out = tmp_path / "published"
    assert main(["sweep", str(spec), "--store", str(folder.path), "--collect", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "collected 3 of 4 runs" in printed and f"not collected (not done): {unfinished.run_id}" in printed
    assert printed.count("not collected") == 1  # the done runs are not listed as left out
    import pandas as pd

    table = pd.read_csv(out / "results.csv")
    assert sorted(table["run_id"].unique()) == sorted(run.run_id for run in runs[:3])
    for run in runs[:3]:  # each run's accuracy is its last metrics record, read here independently
        last = json.loads(run.directory.metrics_path.read_text().splitlines()[-1])
        rows = table[(table["run_id"] == run.run_id) & (table["metric"] == "test_accuracy")]
        assert rows["value"].tolist() == [last["test_accuracy"]]
    assert (out / "results.parquet").exists()
    provenance = pd.read_csv(out / "provenance.csv")  # what each collected run was made with
    assert sorted(provenance["run_id"]) == sorted(run.run_id for run in runs[:3])
    assert set(provenance["batch_size"]) == {runs[0].config.train.batch_size}
    assert not folder.results_csv.exists() and not folder.results_parquet.exists()  # the sweep's own table
    assert sorted(p.name for p in unfinished.path.iterdir()) == before  # not claimed, not resumed


def test_collect_with_no_done_run_is_one_line_error(tmp_path, capsys):
    (tmp_path / "base.toml").write_text("[train]\nepochs = 1\n")
    spec = tmp_path / "s.toml"
    spec.write_text('base = "base.toml"\nalphas = [0]\nseeds = 1\n')
    assert main(["sweep", str(spec), "--store", str(tmp_path / "sweep"), "--collect", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err.strip()
    assert "no run" in error and "is done yet" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "o" / "results.csv").exists()


def test_a_run_resumed_after_a_killed_attempt_counts_its_recorded_epochs(tmp_path):
    """A SIGKILLed attempt never writes its end: the epochs it recorded still count for the ETA."""
    from selectivity.sweep.run_state import training_seconds

    (tmp_path / TIMING_FILE).write_text(json.dumps({"attempts": [
        {"host": "h", "pid": 1, "start": 1000.0, "end": None, "outcome": None, "resumed": False},
        {"host": "h", "pid": 2, "start": 5000.0, "end": 5100.0, "outcome": "done", "resumed": True}]}))
    epochs = [400.0, 450.0, 90.0]  # two epochs by the killed attempt, the last by the resumed one
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"epoch": i + 1, "seconds": s}) + "\n"
                                                    for i, s in enumerate(epochs)))
    assert training_seconds(tmp_path) == sum(epochs)
    # the killed attempt marked itself alive at its last checkpoint: it counts up to there
    timing = json.loads((tmp_path / TIMING_FILE).read_text())
    timing["attempts"][0]["alive"] = 2000.0
    (tmp_path / TIMING_FILE).write_text(json.dumps(timing))
    assert training_seconds(tmp_path) == 1000.0 + 100.0
    # every attempt finished: their wall time (start-up included) is the larger and is used
    (tmp_path / TIMING_FILE).write_text(json.dumps({"attempts": [
        {"host": "h", "pid": 1, "start": 0.0, "end": 1000.0, "outcome": "done", "resumed": False}]}))
    assert training_seconds(tmp_path) == 1000.0
    (tmp_path / "metrics.jsonl").unlink()
    (tmp_path / TIMING_FILE).unlink()
    assert training_seconds(tmp_path) is None
