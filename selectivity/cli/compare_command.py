"""`selectivity compare FIRST SECOND`: did each alpha's effect change between two sweeps?

    selectivity compare ~/runs/resnet20-6ep ~/runs/resnet20-18ep --vary epochs --out cost_change.csv

For every alpha in both sweeps: its effect (minus alpha = 0) on test accuracy and mean SI in
each, and the change from FIRST to SECOND with its Welch 95% CI (report.cost_change). Refused
when the sweeps differ, or are not recorded (provenance.csv) to agree, in anything but the
--vary factors, unless --allow-confounds, which names the confounds beside every direction.
Reads results tables only; never trains.
"""
from pathlib import Path

POINTS_METRICS = ("test_accuracy",)  # fractions in the table, printed as percentage points


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare", help="how each alpha's effect (minus alpha = 0) changed between two sweeps",
        description="E.g. a short and a long schedule: each alpha's effect on test accuracy and mean SI in "
                    "both sweeps and the change, second minus first, with its Welch 95% CI over the four "
                    "groups of seeds. Reads results tables; never trains.")
    parser.add_argument("first", type=Path, help="a sweep folder, or its results.parquet / results.csv")
    parser.add_argument("second", type=Path, help="the sweep to compare with the first, likewise")
    parser.add_argument("--out", type=Path, metavar="CSV", help="also write the table here (atomically)")
    parser.add_argument("--vary", action="append", default=[], metavar="FACTOR",
                        help="what the comparison is about, so a difference in it is no confound: model, dataset, "
                             "epochs, recipe (or one of batch_size, lr, momentum, nesterov, weight_decay, schedule, "
                             "warmup_epochs), precision, machine; repeatable")
    parser.add_argument("--allow-confounds", action="store_true",
                        help="compare sweeps that differ (or are not recorded to agree) in other factors too; "
                             "the output names them beside every direction")
    parser.add_argument("--rule", type=Path, metavar="SPEC",
                        help="the sweep spec of SECOND whose [rule] table decides a claim: print its verdict, the "
                             "commit that fixed it (git) and whether SECOND's runs started after it")
    parser.set_defaults(run=run)


def _interval(value: float, low: float, high: float, points: bool) -> str:
    scale, digits = (100.0, 2) if points else (1.0, 3)
    if low != low:  # NaN: a group has fewer than 2 seeds
        return f"{value * scale:+.{digits}f} (no CI)"
    return f"{value * scale:+.{digits}f} [{low * scale:+.{digits}f}, {high * scale:+.{digits}f}]"


def _seeds(seeds_needed: float) -> str:
    if seeds_needed != seeds_needed:  # NaN: decided, or no interval
        return ""
    if seeds_needed == float("inf"):
        from selectivity.report.comparison import MAX_SEEDS_SEARCHED
        return f" (no number of seeds up to {MAX_SEEDS_SEARCHED} decides it)"
    return f" (~{seeds_needed:.0f} seeds in each group would decide it)"


def run(args) -> int:
    from selectivity import atomic
    from selectivity.report import load_results
    from selectivity.errors import SelectivityError
    from selectivity.report.cost_change import compare_sweeps
    from selectivity.report.provenance import load_provenance

    if args.out:  # before reading anything: a bad --out is a one-line error, not a traceback after the printout
        if args.out.is_dir():
            raise SelectivityError(f"--out {args.out} is a folder; expected a file path ending in .csv or .parquet")
        atomic.check_writable(args.out.parent)
    table = compare_sweeps(load_results(args.first), load_results(args.second), load_provenance(args.first),
                           load_provenance(args.second), args.vary, args.allow_confounds)
    print(f"first: {args.first}   second: {args.second}   (accuracy in points; effect = alpha minus alpha = 0, "
          "Welch 95% CI)")
    confounded = table["confounds"].iloc[0] if len(table) else "none"
    print(f"varied: {', '.join(args.vary) or 'nothing'}   confounds: {confounded}")
    named = f" [confounded: {confounded}]" if confounded != "none" else ""
    for row in table.itertuples(index=False):
        points = row.metric in POINTS_METRICS
        seeds = f"{row.n_first}/{row.n_first_baseline} -> {row.n_second}/{row.n_second_baseline} seeds"
        print(f"{row.metric:<14} alpha={row.alpha_label:<8} {seeds:<22} "
              f"first {_interval(row.first_effect, row.first_effect_ci_low, row.first_effect_ci_high, points):<26} "
              f"second {_interval(row.second_effect, row.second_effect_ci_low, row.second_effect_ci_high, points):<26} "
              f"change {_interval(row.change, row.change_ci_low, row.change_ci_high, points)} {row.direction}"
              f"{named}{_seeds(row.seeds_needed)}")
    if args.rule:
        _print_rule(args.rule, table, load_provenance(args.second), named)
    if args.out:
        atomic.write_table(args.out, table)
        print(f"wrote {args.out}")
    return 0


def _print_rule(spec: Path, table, provenance, named: str) -> None:
    """The rule's verdict, the commit that fixed it, and whether SECOND's runs (its provenance) started after."""
    from selectivity.report.preregistration import fixing_commit, read_rule, rule_verdict, timing

    rule = read_rule(spec)
    verdict, row = rule_verdict(rule, table)
    change = _interval(row["change"], row["change_ci_low"], row["change_ci_high"], rule.metric in POINTS_METRICS)
    print(f'rule of {spec}: "{rule.claim}" (alpha = {rule.alpha:g}, {rule.metric}): {verdict} (change '
          f"{change}, holds when "
          f"the CI lies {rule.holds} 0){named}")
    fixed = fixing_commit(spec, rule)
    if fixed is None:
        print("  fixed by: not readable (not a git checkout, or no commit holds the rule's text)")
        return
    started = provenance["started"] if provenance is not None and "started" in provenance else []
    when = timing(fixed[1], started)
    detail = "" if when != "not checkable" else ": not every run of the second sweep records its start (provenance.csv)"
    print(f"  fixed by commit {fixed[0]} ({fixed[1]}); against the second sweep's runs: {when}{detail}")
