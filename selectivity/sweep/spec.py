"""Sweep spec files (TOML) and their expansion into runs.

    name = "digits-alpha"                 # the sweep folder's name (default: the file's stem)
    base = "../small-cnn-digits.toml"     # experiment config, relative to this file
    alphas = [-10, -1, 0, 1, "0x5,-20"]   # numbers or per-epoch schedules
    seeds = 3                             # a count (0, 1, 2) or a list [0, 4, 7]
    analyses = []                         # post-sweep analyses by name (selectivity.sweep.analyses)

    [analysis_settings.cca]               # optional: one table of settings per listed analysis

    [overrides]                           # dotted config keys applied to the base config
    "train.epochs" = 3

    [rule]                                # optional: a decision rule fixed before the runs, which
                                          # `selectivity compare --rule` reads (the sweep ignores it)

`--set key=value` on the command line overrides a spec key (name, base, alphas, seeds,
analyses) or, for a dotted key, a config setting.
"""
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from selectivity.alpha_schedule import parse_alpha
from selectivity.config import ExperimentConfig, load_config, read_toml
from selectivity.config import parse_assignments as parse_set_values  # noqa: F401  (the sweep API's name)
from selectivity.errors import SelectivityError
from selectivity.paths import check_path_component
from selectivity.setup import check_registered_names
from selectivity.sweep.analyses import AnalysisPlan, check_analysis_settings, get_analysis

SPEC_KEYS = ("name", "base", "alphas", "seeds", "analyses", "analysis_settings", "overrides", "rule")
SWEPT_SETTINGS = ("regularizer.alpha", "seed")  # set by the grid, not by overrides


@dataclass(frozen=True)
class SweepSpec:
    name: str
    base: Path  # absolute path of the base experiment config
    alphas: tuple[float | str, ...]
    seeds: tuple[int, ...]
    overrides: dict = field(default_factory=dict)
    analyses: AnalysisPlan = AnalysisPlan()  # names, with each one's [analysis_settings.<name>]


def alpha_label(alpha: float | str) -> str:
    """The alpha as written: numbers in shortest form (10.0 -> "10"), schedules verbatim."""
    if isinstance(alpha, str):
        return alpha.strip()
    short = format(alpha, "g")
    return short if float(short) == alpha else repr(float(alpha))


def _normalize_alpha(alpha, where: str) -> float | str:
    """A number, or a schedule string; a string holding one plain number becomes that number."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, str)):
        raise SelectivityError(f"{where} = {alpha!r}: expected a number or a schedule string such as '0x5,-20'")
    try:
        segments = parse_alpha(alpha)
    except SelectivityError as error:  # malformed or not finite: say which grid entry
        raise SelectivityError(f"{where}: {error}") from None
    if isinstance(alpha, str) and len(segments) == 1 and segments[0][1] is None:
        return segments[0][0]  # "-1" and -1 are the same run: give them the same hash
    return float(alpha) if not isinstance(alpha, str) else alpha.strip()


MAX_SEEDS = 10_000  # 500x the paper's 20 replicates; a larger count is a typo (10**11 exhausted memory)


def _seeds(value, where: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool) and value > MAX_SEEDS:
        raise SelectivityError(f"{where} = {value} is too many; expected a count of at most {MAX_SEEDS} runs per alpha")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return tuple(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        if len(set(value)) != len(value):
            raise SelectivityError(f"{where} = {value!r} repeats a seed; expected distinct seeds")
        return tuple(value)
    raise SelectivityError(f"{where} = {value!r}: expected a count >= 1 or a non-empty list of integer seeds")


def spec_from_dict(values: dict, spec_dir: Path, default_name: str, where: str = "sweep spec",
                   names_overridden: bool = False) -> SweepSpec:
    """Check the spec's keys and types; relative `base` paths are resolved against spec_dir.

    names_overridden: `analyses` came from the command line, which may leave out analyses the
    file configures (their settings are kept aside); in the file itself that is refused.
    """
    unknown = [key for key in values if key not in SPEC_KEYS]
    if unknown:
        raise SelectivityError(f"{where} has unknown key(s) {unknown}; valid keys are: {', '.join(SPEC_KEYS)}")
    for key in ("base", "alphas"):
        if key not in values:
            raise SelectivityError(f"{where} lacks '{key}'; expected base = \"config.toml\" and alphas = [...]")
    if not isinstance(values["alphas"], list) or not values["alphas"]:
        raise SelectivityError(f"{where}: alphas = {values['alphas']!r}; expected a non-empty list")
    overrides = values.get("overrides", {})
    if not isinstance(overrides, dict):
        raise SelectivityError(f"{where}: overrides must be a table of dotted keys; got {overrides!r}")
    for key in SWEPT_SETTINGS:
        if key in overrides:
            raise SelectivityError(f"{where}: override '{key}' is set by the sweep grid; use alphas/seeds instead")
    analyses = values.get("analyses", [])
    if not isinstance(analyses, list) or not all(isinstance(name, str) for name in analyses):
        raise SelectivityError(f"{where}: analyses = {analyses!r}; expected a list of analysis names")
    for name in analyses:  # an unknown analysis fails now, not after every run has trained
        get_analysis(name)
    alphas = tuple(_normalize_alpha(a, f"alphas[{i}]") for i, a in enumerate(values["alphas"]))
    labels = [alpha_label(alpha) for alpha in alphas]
    if len(set(labels)) != len(labels):
        raise SelectivityError(f"{where}: alphas {labels} repeat a value; expected each alpha once")
    return SweepSpec(
        name=check_path_component(values.get("name", default_name), f"{where}: name"),
        base=(spec_dir / str(values["base"])).resolve(),
        alphas=alphas,
        seeds=_seeds(values.get("seeds", 1), "seeds"),
        overrides=dict(overrides),
        analyses=_analysis_plan(analyses, values.get("analysis_settings", {}), where, names_overridden),
    )


def _non_finite(value, key: str) -> str | None:
    """The dotted key of the first NaN or infinite number inside `value` (lists and tables too)."""
    if isinstance(value, float) and not math.isfinite(value):
        return key
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for inner, item in items:
        found = _non_finite(item, f"{key}.{inner}" if isinstance(value, dict) else f"{key}[{inner}]")
        if found:
            return found
    return None


def _analysis_plan(names: list, settings, where: str, names_overridden: bool = False) -> AnalysisPlan:
    if not isinstance(settings, dict):
        raise SelectivityError(f"{where}: analysis_settings = {settings!r}; expected tables [analysis_settings.<name>]")
    bad = _non_finite(settings, "analysis_settings")
    if bad:  # TOML has nan and inf; no analysis setting means either
        raise SelectivityError(f"{where}: {bad} is not finite; expected finite numbers in every analysis setting")
    try:
        plan = AnalysisPlan(tuple(names), settings)
        unlisted = sorted(set(settings) - set(names))
        if unlisted and not names_overridden:  # `--set analyses=[...]` may leave configured ones out, a file may not
            raise SelectivityError(f"analysis_settings for {unlisted}, which analyses = {list(names)} does not run; "
                                   "expected each configured analysis listed in analyses (or its table removed)")
        for name in plan:  # values too, so a bad setting fails before the runs train
            check_analysis_settings(name, plan.settings[name])
        return plan
    except SelectivityError as error:
        raise SelectivityError(f"{where}: {error}") from None


def load_sweep_spec(path: str | Path, cli_overrides: dict | None = None) -> SweepSpec:
    """Read a sweep spec file and apply command-line overrides.

    Args:
        path: the TOML spec.
        cli_overrides: {"seeds": 2, "train.epochs": 1, ...} (see parse_set_values): dotted keys
            are config settings, the others spec keys.
    Returns:
        The checked SweepSpec (the base config is loaded later, by expand_runs).
    """
    path = Path(path)
    if path.is_dir():
        raise SelectivityError(f"sweep spec {path} is a folder; expected a TOML sweep spec file")
    values = read_toml(path, "sweep spec")
    for key, value in (cli_overrides or {}).items():
        if "." in key:
            values.setdefault("overrides", {})[key] = value
        else:
            values[key] = value
    return spec_from_dict(values, path.parent, path.stem, where=f"sweep spec {path}",
                          names_overridden="analyses" in (cli_overrides or {}))


def base_config(spec: SweepSpec) -> ExperimentConfig:
    """The base experiment config with the spec's overrides applied."""
    return load_config(spec.base, spec.overrides)


def grid_configs(spec: SweepSpec) -> list[tuple[ExperimentConfig, str]]:
    """(config, alpha_label) for every alpha x seed, alpha-major (all seeds of an alpha together)."""
    base = base_config(spec)
    check_registered_names(base)  # before any run folder: a typo would fail every run
    grid = []
    for alpha in spec.alphas:
        regularizer = dataclasses.replace(base.regularizer, alpha=alpha)
        for seed in spec.seeds:
            grid.append((dataclasses.replace(base, regularizer=regularizer, seed=seed), alpha_label(alpha)))
    return grid
