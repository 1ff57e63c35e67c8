#!/usr/bin/env bash
# Publish a sweep's results under docs/results/NAME/ so every table and figure of its page can be
# rebuilt from committed files (tests/test_published_results.py checks the tables):
#
#   bash experiments/publish-results.sh NAME SPEC STORE [--set KEY=VALUE ...]
#   bash experiments/publish-results.sh resnet20-cifar10 experiments/sweeps/resnet20-cifar10-cpu.toml \
#       ~/runs/resnet20-cifar10-cpu --set 'alphas=[0,-10,-2,-1,1]' --set 'analyses=[]'
#
# 1. `selectivity sweep SPEC --store STORE --collect`: the tidy table of the runs already done
#    (nothing trained; the runs left out are listed), written to docs/results/NAME/results.csv,
#    and provenance.csv (each run's recipe, precision, device, CPU, start), which the report copies;
# 2. `selectivity report docs/results/NAME/results.csv`: the tables (CSV), the figures (PNG) and
#    report.md, copied beside it; the published verdict_history.csv goes in first, so the report
#    appends this publication's looks to it instead of starting a new one. Run it from the repository root.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 NAME SPEC STORE [--set KEY=VALUE ...]" >&2; exit 2; }
name=$1 spec=$2 store=$3
shift 3
out=docs/results/$name
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m selectivity sweep "$spec" --store "$store" --collect "$work" "$@"
mkdir -p "$work/report"
[ ! -f "$out/verdict_history.csv" ] || cp "$out/verdict_history.csv" "$work/report/"
python3 -m selectivity report "$work/results.csv" --out "$work/report"
mkdir -p "$out"
rm -f "$out"/*.csv "$out"/*.png "$out/report.md"   # nothing from an earlier publication stays
cp "$work/results.csv" "$out/"
cp "$work"/report/*.csv "$work"/report/*.png "$out/"
# the PNGs are published, not the SVG copies: drop report.md's links to them
sed -E 's/ \(\[SVG\]\([^)]*\)\)//' "$work/report/report.md" > "$out/report.md"
# run ids are the first column; the off-axis control's pooled rows ("off_axis/<alpha>") are not runs
echo "published $(tail -n +2 "$out/results.csv" | cut -d, -f1 | grep -v '^off_axis/' | sort -u | wc -l) runs in $out"
