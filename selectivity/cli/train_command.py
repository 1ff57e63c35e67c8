"""`selectivity train CONFIG`: one run of an experiment config, resumable."""
from pathlib import Path

from selectivity import paths
from selectivity.atomic import check_writable
from selectivity.cli.options import add_set_option, set_assignments
from selectivity.config import load_config, parse_assignments
from selectivity.store import run_path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train one model (with the selectivity regularizer) from an experiment config",
        description="Train one run; rerunning the same command resumes it from its last checkpoint.",
    )
    parser.add_argument("config", type=Path, help="experiment config (TOML), e.g. experiments/resnet20-cifar10.toml")
    parser.add_argument("--alpha", help="regularizer strength: a number or a schedule such as 0x5,-20")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--data-root", help="where the dataset lives (default: $SELECTIVITY_DATA)")
    parser.add_argument("--download", action="store_true", help="fetch the dataset if it is missing (needs internet)")
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--out", type=Path, help="run store (default: $SELECTIVITY_RUNS/train)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (e.g. in batch jobs)")
    add_set_option(parser)
    parser.set_defaults(run=run)


def overrides_from(args) -> dict:
    overrides = {}
    for key, value in (
        ("regularizer.alpha", _number_or_schedule(args.alpha)), ("seed", args.seed), ("train.epochs", args.epochs),
        ("train.batch_size", args.batch_size), ("data.root", args.data_root), ("device", args.device),
        ("data.download", True if args.download else None),
    ):
        if value is not None:
            overrides[key] = value
    overrides.update(parse_assignments(set_assignments(args)))
    return overrides


def _number_or_schedule(text: str | None):
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def run(args) -> int:
    from selectivity.setup import check_registered_names  # torch-heavy: import only when training
    from selectivity.train import RunFailed, train_run

    config = load_config(args.config, overrides_from(args))
    check_registered_names(config)  # before the run folder is made
    run_dir = check_writable(run_path(args.out or paths.runs_root() / "train", config))  # before any training
    print(f"run folder: {run_dir}", flush=True)
    try:
        summary = train_run(config, run_dir, progress=not args.no_progress)
    except RunFailed as failure:
        print(f"run failed at epoch {failure.epoch}: {failure.reason} (last good checkpoint kept in {run_dir})")
        return 1
    print(
        f"done: test accuracy {summary['test_accuracy']:.4f}, test mean SI {summary['mean_si']:.4f}, "
        f"dead units {summary['dead_fraction']:.3f} -> {run_dir}"
    )
    return 0
