"""Run folders: one per (settings hash, seed), holding everything a run produced.

    <store>/<config_hash>/seed_<seed>/
        config.json     the resolved settings (written first)
        metrics.jsonl   one JSON object per evaluation
        checkpoint.pt   the last finished epoch (atomic)
        units.parquet   the final per-unit table (and units.csv)
        units_epoch<N>.parquet  the per-unit table at evaluation epoch N (evaluation.save_units only)
        done.json       written last; names what the finished run must hold
        failed.json     reason and epoch of a run that failed (its last good checkpoint stays)

A run counts as done only when done.json exists and every file it names is whole, so a
truncated or half-written folder is redone, never read as a result.
"""
import json
from pathlib import Path

import pandas as pd

from selectivity import atomic
from selectivity.config import ExperimentConfig, config_hash, non_default_settings, to_dict
from selectivity.errors import SelectivityError


def run_path(store: str | Path, config: ExperimentConfig) -> Path:
    """Where the run of `config` lives in `store`."""
    return Path(store) / config_hash(config) / f"seed_{config.seed}"


class RunDirectory:
    """Paths and markers of one run folder (see module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config_path = self.path / "config.json"
        self.metrics_path = self.path / "metrics.jsonl"
        self.checkpoint_path = self.path / "checkpoint.pt"
        self.units_path = self.path / "units.parquet"
        self.units_csv_path = self.path / "units.csv"
        self.done_path = self.path / "done.json"
        self.failed_path = self.path / "failed.json"

    # --- settings ---------------------------------------------------------------------------
    def claim_settings(self, config: ExperimentConfig) -> None:
        """Write config.json, or check that the folder already holds this very run."""
        if self.config_path.exists():
            stored = json.loads(self.config_path.read_text())
            if stored.get("hash") != config_hash(config) or stored.get("config", {}).get("seed") != config.seed:
                raise SelectivityError(
                    f"{self.path} holds a different run (settings {stored.get('non_default')}, "
                    f"seed {stored.get('config', {}).get('seed')}); expected an empty folder or the same run"
                )
            return
        self.path.mkdir(parents=True, exist_ok=True)
        atomic.write_json(
            self.config_path,
            {"hash": config_hash(config), "non_default": non_default_settings(config), "config": to_dict(config)},
        )

    # --- metrics ----------------------------------------------------------------------------
    def read_metrics(self, strict: bool = True) -> list[dict]:
        """Every evaluation record; a broken line raises (strict) or ends the list (resume)."""
        if not self.metrics_path.exists():
            return []
        records = []
        for number, line in enumerate(self.metrics_path.read_text().splitlines(), 1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if strict:
                    raise SelectivityError(f"{self.metrics_path} line {number} is not valid JSON; the run must be redone")
                break
        return records

    def write_metrics(self, records: list[dict]) -> None:
        """Rewrite metrics.jsonl atomically (a resumed run drops records past its checkpoint)."""
        atomic.write_text(self.metrics_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))

    # --- results ----------------------------------------------------------------------------
    def write_units(self, units: pd.DataFrame) -> None:
        atomic.write_table(self.units_path, units)
        atomic.write_table(self.units_csv_path, units)

    def read_units(self) -> pd.DataFrame:
        return pd.read_parquet(self.units_path)

    def write_units_snapshot(self, epoch: int, units: pd.DataFrame) -> None:
        """The per-unit table of the evaluation after `epoch` (atomic; rewritten on resume)."""
        atomic.write_table(self.path / f"units_epoch{epoch}.parquet", units)

    def read_units_snapshots(self) -> dict[int, pd.DataFrame]:
        """{epoch: per-unit table} of every units_epoch<N>.parquet, in epoch order."""
        found = {}
        for path in self.path.glob("units_epoch*.parquet"):
            suffix = path.stem.removeprefix("units_epoch")
            if suffix.isdigit():
                found[int(suffix)] = path
        return {epoch: pd.read_parquet(found[epoch]) for epoch in sorted(found)}

    def mark_done(self, summary: dict) -> None:
        """Write done.json last: it records how many metric records and units the run has."""
        self.failed_path.unlink(missing_ok=True)
        atomic.write_json(
            self.done_path,
            {"summary": summary, "metric_records": len(self.read_metrics()), "units": len(self.read_units())},
        )

    def mark_failed(self, reason: str, epoch: int) -> None:
        atomic.write_json(self.failed_path, {"reason": reason, "epoch": epoch})

    def failure(self) -> dict | None:
        return json.loads(self.failed_path.read_text()) if self.failed_path.exists() else None

    def is_done(self) -> bool:
        """True only for a finished run whose files are all whole and agree with done.json."""
        try:
            done = json.loads(self.done_path.read_text())
            return bool(
                len(self.read_metrics(strict=True)) == done["metric_records"]
                and len(self.read_units()) == done["units"]
                and json.loads(self.config_path.read_text())["hash"]
            )
        except Exception:  # any missing, truncated or unreadable file: not a result
            return False

    def summary(self) -> dict:
        return json.loads(self.done_path.read_text())["summary"]
