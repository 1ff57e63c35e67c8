"""The one-way architecture of docs/ARCHITECTURE.md, checked on every import in the package."""
import ast
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
    "measure": {"data", "capture", "metrics"},
    "store": set(),
    "train": {"data", "models", "capture", "metrics", "regularizer", "measure", "store"},
    "claims": set(),
    "sweep": {"train", "store", "claims", "analysis", "measure", "model_loading", "data", "models", "capture",
              "metrics"},
    "units": {"data", "capture", "metrics", "measure", "model_loading", "train", "sweep", "store"},
    "report": set(),
    "checkpoint_import": set(),
    "model_loading": {"data", "models", "train", "checkpoint_import"},
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
    assert imported_stages(PACKAGE / "__init__.py") <= {"capture", "errors", "metrics", "regularizer"}
