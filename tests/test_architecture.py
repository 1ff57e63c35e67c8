"""The one-way architecture of docs/ARCHITECTURE.md, checked on every import in the package."""
import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "selectivity"
FOUNDATION = {"errors", "paths", "atomic", "config", "alpha_schedule"}
ENTRY_POINTS = {"__init__", "__main__"}  # the package root re-exports the core; __main__ runs the cli
ALLOWED = {
    "data": set(),
    "models": set(),
    "capture": set(),
    "metrics": set(),
    "analysis": {"metrics"},
    "regularizer": {"capture", "metrics"},
    "integrations": {"regularizer", "capture", "metrics"},
    "measure": {"data", "capture", "metrics"},
    "setup": {"data", "models", "capture"},
    "store": set(),
    "train": {"data", "models", "capture", "metrics", "regularizer", "measure", "setup", "store"},
    "claims": set(),
    "sweep": {"train", "store", "claims", "analysis", "measure", "model_loading", "setup", "data", "models",
              "capture", "metrics"},
    "units": {"data", "capture", "metrics", "measure", "model_loading", "setup", "train", "sweep", "store"},
    "report": set(),
    "checkpoint_import": set(),
    "model_loading": {"data", "models", "setup", "checkpoint_import"},
    "model_hubs": {"data", "model_loading", "checkpoint_import"},
    "api": {"data", "capture", "metrics", "measure", "setup"},
    "cli": None,  # the command wires everything
}


def stage_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_stages(path: Path) -> set[str]:
    stages = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("selectivity"):
            parts = node.module.split(".")
            names = [parts[1]] if len(parts) > 1 else [alias.name for alias in node.names]
            stages.update(names)
        elif isinstance(node, ast.Import):
            stages.update(a.name.split(".")[1] for a in node.names if a.name.startswith("selectivity."))
    return stages


def test_every_stage_imports_only_earlier_stages():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        stage = stage_of(path)
        if stage in ENTRY_POINTS:
            continue
        if stage in FOUNDATION:
            allowed = FOUNDATION
        elif ALLOWED.get(stage, set()) is None:
            continue
        else:
            assert stage in ALLOWED, f"{path} belongs to no stage of docs/ARCHITECTURE.md"
            allowed = ALLOWED[stage] | FOUNDATION | {stage}
        for imported in imported_stages(path) - allowed:
            violations.append(f"{path.relative_to(PACKAGE.parent)} imports {imported}")
    assert not violations, violations


def test_the_package_root_exports_the_core_only():
    # the core, plus the one-call `selectivity.measure` (api) over the measure module
    assert imported_stages(PACKAGE / "__init__.py") <= {"capture", "errors", "metrics", "regularizer", "api", "measure"}


def test_measure_does_not_load_the_trainer():
    """`selectivity measure` shares setup (device, data, model) with the trainer, not the trainer itself."""
    script = ("import sys, selectivity.cli.measure_command, selectivity.model_loading, selectivity.setup; "
              "print(sorted(m for m in sys.modules if m.startswith('selectivity.train')))")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
