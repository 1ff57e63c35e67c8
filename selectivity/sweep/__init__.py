"""Sweeps: alpha x seed grids of runs that resume, survive faults, and scale out on Ray.

    spec = load_sweep_spec("experiments/sweeps/digits-alpha.toml", {"train.epochs": 2})
    folder = sweep_folder_for(spec)                    # runs_root()/<name>, or a store path
    executor = make_executor("local")                  # or "ray"
    result = run_sweep(spec.name, folder, folder.runs_for(spec), executor, spec.analyses)
    executor.close()                                   # result.exit_code = failed runs

Modules: spec (spec files, the grid), layout (the sweep folder), worker (one run under a
claim), executors / ray_executor, driver (run_sweep), results (the tidy table), analyses
(post-sweep hooks), run_state and status (what each run is doing).
"""
from selectivity.sweep.analyses import AnalysisContext, list_analyses, register_analysis
from selectivity.sweep.driver import SweepResult, run_sweep
from selectivity.sweep.executors import default_workers, make_executor
from selectivity.sweep.layout import SweepFolder, SweepRun, open_sweep, sweep_folder_for
from selectivity.sweep.results import COLUMNS, build_results, write_results
from selectivity.sweep.spec import SweepSpec, alpha_label, load_sweep_spec, parse_set_values
from selectivity.sweep.status import format_status, sweep_status

__all__ = ["AnalysisContext", "COLUMNS", "SweepFolder", "SweepResult", "SweepRun", "SweepSpec", "alpha_label",
           "build_results", "default_workers", "format_status", "list_analyses", "load_sweep_spec",
           "make_executor", "open_sweep", "parse_set_values", "register_analysis", "run_sweep",
           "sweep_folder_for", "sweep_status", "write_results"]
