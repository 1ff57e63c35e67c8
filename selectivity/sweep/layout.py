"""The sweep folder and the runs it holds.

    <sweep folder>/                 default selectivity.paths.runs_root()/<sweep name>
        sweep.json                  the expanded grid (name, analyses, every run's settings):
                                    `selectivity status <sweep folder>` needs no spec file
        events.jsonl                one line per run start and finish, from every worker
        runs/<config_hash>/seed_<n>/  one run folder each (selectivity.store.RunDirectory)
        results.parquet, results.csv  the tidy table of every done run (rebuilt, atomically)
"""
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from selectivity import atomic
from selectivity.config import ExperimentConfig, config_from_dict, config_hash, to_dict
from selectivity.errors import SelectivityError
from selectivity.paths import check_path_component, runs_root
from selectivity.store import RunDirectory, run_path
from selectivity.sweep.analyses import AnalysisPlan
from selectivity.sweep.spec import SweepSpec, grid_configs, load_sweep_spec


@dataclass(frozen=True)
class SweepRun:
    """One cell of the grid: its settings, its alpha as written, and its run folder."""

    config: ExperimentConfig
    alpha_label: str
    path: Path

    @property
    def run_id(self) -> str:
        return f"{config_hash(self.config)}/seed_{self.config.seed}"

    @property
    def directory(self) -> RunDirectory:
        return RunDirectory(self.path)


class SweepFolder:
    """Paths of one sweep folder (see module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.runs_dir = self.path / "runs"
        self.manifest_path = self.path / "sweep.json"
        self.events_path = self.path / "events.jsonl"
        self.results_parquet = self.path / "results.parquet"
        self.results_csv = self.path / "results.csv"

    def runs_for(self, spec: SweepSpec) -> list[SweepRun]:
        """Every run of the spec's grid, placed in this folder."""
        return [SweepRun(config, label, run_path(self.runs_dir, config)) for config, label in grid_configs(spec)]

    def write_manifest(self, name: str, runs: list[SweepRun], analyses=()) -> None:
        entries = [{"run_id": run.run_id, "alpha_label": run.alpha_label, "config": to_dict(run.config)}
                   for run in runs]
        plan = AnalysisPlan.of(analyses)
        atomic.write_json(self.manifest_path, {"name": name, "analyses": list(plan),
                                               "analysis_settings": plan.settings, "runs": entries})

    def read_manifest(self) -> tuple[str, list[SweepRun], AnalysisPlan]:
        """(name, runs, analyses with their settings) as the last `selectivity sweep` on this folder expanded them."""
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            raise SelectivityError(f"{self.path} has no sweep.json; expected a sweep folder or a sweep spec") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise self._damaged(f"it is not JSON: {error}") from None
        try:
            runs = []
            for entry in manifest["runs"]:
                config = config_from_dict(entry["config"])
                runs.append(SweepRun(config, entry["alpha_label"], run_path(self.runs_dir, config)))
            plan = AnalysisPlan(tuple(manifest.get("analyses", ())), manifest.get("analysis_settings", {}))
            return check_path_component(manifest["name"], "sweep.json's name"), runs, plan
        except SelectivityError as error:  # a setting out of range or unknown
            raise self._damaged(str(error)) from None
        except (KeyError, TypeError, AttributeError, ValueError) as error:  # not the shape a sweep writes
            raise self._damaged(f"{type(error).__name__}: {error}") from None

    def _damaged(self, why: str) -> SelectivityError:
        return SelectivityError(f"{self.manifest_path} is damaged ({why}); expected the grid a sweep writes: give the "
                                f"sweep spec instead (SPEC --store {self.path}), and its next run rewrites sweep.json")

    def log_event(self, event: str, run_id: str, **details) -> None:
        """Append one JSON line; a single small O_APPEND write is not interleaved with others."""
        record = {"time": time.time(), "event": event, "run_id": run_id, "host": socket.gethostname(),
                  "pid": os.getpid(), **details}
        self.path.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.events_path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o644)
        try:
            os.write(descriptor, (json.dumps(record, sort_keys=True) + "\n").encode())
        finally:
            os.close(descriptor)

    def read_events(self) -> list[dict]:
        if not self.events_path.exists():
            return []
        return [json.loads(line) for line in self.events_path.read_text().splitlines() if line.strip()]


def sweep_folder_for(spec: SweepSpec, store: str | Path | None = None) -> SweepFolder:
    """`store` if given, else selectivity.paths.runs_root()/<spec name>."""
    return SweepFolder(Path(store) if store else runs_root() / spec.name)


def open_sweep(target: str | Path, store: str | Path | None = None, overrides: dict | None = None):
    """Resolve SWEEP (a spec file or a sweep folder) for `selectivity status` and friends.

    Returns:
        (name, SweepFolder, runs, analyses).
    """
    target = Path(target)
    if target.is_dir():
        if overrides:
            raise SelectivityError("--set needs a sweep spec file; a sweep folder's grid is fixed in sweep.json")
        folder = SweepFolder(target)
        name, runs, analyses = folder.read_manifest()
        return name, folder, runs, analyses
    if not target.exists():
        raise SelectivityError(f"sweep {target} does not exist; expected a sweep spec (.toml) or a sweep folder")
    spec = load_sweep_spec(target, overrides)
    folder = sweep_folder_for(spec, store)
    return spec.name, folder, folder.runs_for(spec), spec.analyses
