"""Selectivity over training: every evaluation record as rows, and how stable units' preferred classes are.

Ranadive et al. (2023, "On the special role of class-selective neurons in early training")
follow class selectivity through training. Here, with `evaluation.save_units = true`
(units_epoch<N>.parquet at every evaluation), a unit's preferred class at epoch e *agrees*
when it is live at e and equals its preferred class at the final evaluation. Per layer:
    epoch_preferred_class_agreement (epoch e)  fraction of the final-live units that agree at e
    preferred_class_consistency (final epoch)  mean over final-live units of the fraction of
                                               earlier evaluations at which they agree
"""
import pandas as pd

from selectivity.units.sweep_rows import NETWORK_LAYER, RunRows


def agreement_table(snapshots: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """Per evaluation epoch and unit: layer, unit, epoch, agrees (bool), for units live at the final epoch.

    Args:
        snapshots: {epoch: per-unit table with layer, unit, preferred_class, dead}.
    """
    final_epoch = max(snapshots)
    final = snapshots[final_epoch]
    final = final.loc[~final["dead"].astype(bool), ["layer", "unit", "preferred_class"]]
    frames = []
    for epoch, units in snapshots.items():
        merged = final.merge(units[["layer", "unit", "preferred_class", "dead"]], on=["layer", "unit"],
                             how="left", suffixes=("_final", ""), sort=False)
        agrees = (merged["preferred_class"] == merged["preferred_class_final"]) & ~merged["dead"].fillna(True).astype(bool)
        frames.append(pd.DataFrame({"layer": merged["layer"], "unit": merged["unit"], "epoch": epoch, "agrees": agrees}))
    return pd.concat(frames, ignore_index=True)


def consistency_rows(snapshots: dict[int, pd.DataFrame], build: RunRows) -> list[dict]:
    """epoch_preferred_class_agreement rows per epoch and layer, and preferred_class_consistency per layer."""
    if len(snapshots) < 2:
        return []
    agreement = agreement_table(snapshots)
    rows = [build.row(layer, "epoch_preferred_class_agreement", value, epoch=epoch)
            for (epoch, layer), value in agreement.groupby(["epoch", "layer"], sort=False)["agrees"].mean().items()]
    earlier = agreement[agreement["epoch"] != max(snapshots)]
    per_unit = earlier.groupby(["layer", "unit"], sort=False)["agrees"].mean()
    rows += [build.row(layer, "preferred_class_consistency", value)
             for layer, value in per_unit.groupby(level="layer", sort=False).mean().items()]
    return rows


def dynamics_rows(run, build: RunRows) -> list[dict]:
    """History rows of one done run: its metrics.jsonl records, then the preferred-class rows."""
    rows = []
    for record in run.directory.read_metrics(strict=True):
        epoch = record["epoch"]
        rows.append(build.row(NETWORK_LAYER, "epoch_mean_si", record["mean_si"], epoch=epoch))
        rows.append(build.row(NETWORK_LAYER, "epoch_test_accuracy", record["test_accuracy"], epoch=epoch))
        rows += [build.row(layer, "epoch_mean_si", values["mean_si"], epoch=epoch)
                 for layer, values in record.get("layers", {}).items()]
    return rows + consistency_rows(run.directory.read_units_snapshots(), build)
