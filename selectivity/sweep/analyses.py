"""Post-sweep analyses: functions run once all runs are done, each returning extra tidy rows.

An analysis takes an AnalysisContext (the sweep folder, its done runs, the table built so
far) and returns rows with the table's columns (a DataFrame or a list of dicts), e.g. the
off-axis control's per-layer `pwcca_ratio` rows (layer rows: unit -1, metric, value).
Name analyses in the sweep spec, `analyses = ["cca"]`, either by a name registered here
with @register_analysis("cca") or as "package.module:function". An analysis's settings come
from the spec's `[analysis_settings.<name>]` table and reach it as `context.settings`.
"""
import importlib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable

import pandas as pd

from selectivity.errors import SelectivityError

if TYPE_CHECKING:  # layout imports nothing from here; the import is for annotations only
    from selectivity.sweep.layout import SweepFolder, SweepRun


@dataclass(frozen=True)
class AnalysisContext:
    folder: "SweepFolder"
    runs: list["SweepRun"]  # the done runs only
    table: pd.DataFrame  # the per-run rows (network, layer, unit)
    settings: dict = field(default_factory=dict)  # this analysis's [analysis_settings.<name>] table


class AnalysisPlan(tuple):
    """The names of the post-sweep analyses, in order, with each one's settings.

    A tuple of names (so code that only needs names treats it as one) carrying
    `settings`: {name: dict} from the spec's `[analysis_settings.<name>]` tables.
    """

    def __new__(cls, names=(), settings: dict | None = None):
        plan = super().__new__(cls, names)
        settings = settings or {}
        # settings of a known analysis left out of this run (`--set analyses=[]` on a spec that
        # configures them) are kept aside; a name no analysis has is a typo and refused
        unlisted = sorted(set(settings) - set(plan))
        unknown = [name for name in unlisted if ":" not in name and name not in list_analyses()]
        if unknown:
            raise SelectivityError(f"analysis_settings for {unknown}, which is neither in analyses = {list(plan)} "
                                   f"nor a known analysis; expected one of {list_analyses()} or module:function")
        for name, values in settings.items():
            if not isinstance(values, dict):
                raise SelectivityError(f"analysis_settings.{name} = {values!r}; expected a table of settings")
        plan.settings = {name: dict(settings.get(name, {})) for name in plan}
        return plan

    @classmethod
    def of(cls, analyses) -> "AnalysisPlan":
        """`analyses` as a plan: a plan is kept, a plain sequence of names gets empty settings."""
        return analyses if isinstance(analyses, AnalysisPlan) else cls(tuple(analyses))


Analysis = Callable[[AnalysisContext], "pd.DataFrame | list[dict]"]
_REGISTRY: dict[str, Analysis] = {}
_SETTINGS_CHECKS: dict[str, Callable[[dict], object]] = {}
# Modules that register the analyses shipped with selectivity; imported on first lookup, not
# here: they import torch and models, which the sweep's bookkeeping does not need.
BUILTIN_MODULES = (
    "selectivity.sweep.off_axis",  # "cca": the off-axis control (docs/definitions.md#off-axis-control)
    "selectivity.units.sweep_analyses",  # "unit_nulls", "ablation", "training_dynamics", "top_units"
    "selectivity.sweep.robustness_analyses",  # "corruptions", "attacks", "dimensionality"
)


def _register_builtins() -> None:
    for module_name in BUILTIN_MODULES:
        importlib.import_module(module_name)


def register_analysis(name: str, check_settings: Callable[[dict], object] | None = None
                      ) -> Callable[[Analysis], Analysis]:
    """Decorator: make `function` available to sweep specs as `analyses = ["<name>"]`.

    `check_settings(settings)` raises SelectivityError on bad `[analysis_settings.<name>]`; the spec
    calls it when it is read, so a typo fails before the runs train, not after.
    """

    def register(function: Analysis) -> Analysis:
        _REGISTRY[name] = function
        _SETTINGS_CHECKS.pop(name, None)
        if check_settings is not None:
            _SETTINGS_CHECKS[name] = check_settings
        return function

    return register


def check_analysis_settings(name: str, settings: dict) -> None:
    """Run the settings check `name` registered (an analysis given as module:function has none)."""
    _register_builtins()
    check = _SETTINGS_CHECKS.get(name)
    if check is not None:
        try:
            check(dict(settings))
        except (TypeError, ValueError) as error:  # a value of the wrong type met a comparison or a constructor
            raise SelectivityError(f"analysis_settings.{name} = {settings!r} is malformed ({error}); expected the "
                                   "keys and types its documentation lists") from None


def list_analyses() -> list[str]:
    _register_builtins()
    return sorted(_REGISTRY)


def get_analysis(name: str) -> Analysis:
    """A registered analysis, or the function named by "package.module:function"."""
    _register_builtins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    module_name, colon, function_name = name.partition(":")
    if colon:
        try:
            return getattr(importlib.import_module(module_name), function_name)
        except (ImportError, AttributeError) as error:
            raise SelectivityError(f"analysis {name!r} cannot be loaded ({error}); expected module:function") from None
    known = ", ".join(list_analyses()) or "none registered"
    raise SelectivityError(f"unknown analysis {name!r}; expected a registered name ({known}) or module:function")


def run_analyses(analyses, context: AnalysisContext) -> list["pd.DataFrame | list[dict]"]:
    """Call each analysis of `analyses` (names or an AnalysisPlan) in order, each with its own
    settings; returns what each returned (checked by the caller)."""
    plan = AnalysisPlan.of(analyses)
    functions = [get_analysis(name) for name in plan]  # fail on a bad name before any work
    return [function(replace(context, settings=plan.settings[name])) for name, function in zip(plan, functions)]
