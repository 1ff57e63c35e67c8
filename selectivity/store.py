"""Run folders: one per (settings hash, seed), holding everything a run produced.

    <store>/<config_hash>/seed_<seed>/
        config.json     the resolved settings (written first)
        metrics.jsonl   one JSON object per evaluation
        checkpoint.pt   the last finished epoch (atomic)
        units.parquet   the final per-unit table (and units.csv)
        units_epoch<N>.parquet  the per-unit table at evaluation epoch N (evaluation.save_units only)
        done.json       written last; names what the finished run must hold
        failed.json     reason and epoch of a run that failed (its last good checkpoint stays)
        damaged-<UTC time>-<pid>/  files found damaged, moved aside (never deleted) before a redo

A run counts as done only when done.json exists and every file it names is whole, so a
truncated or half-written folder is redone, never read as a result.
"""
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
from pyarrow import ArrowException

from selectivity import atomic
from selectivity.config import ExperimentConfig, config_hash, non_default_settings, to_dict
from selectivity.errors import SelectivityError

MALFORMED_FAILURE = "failed.json is malformed (the reason it recorded is lost)"


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
        """Write config.json, or check that the folder already holds this very run.

        A config.json that cannot be parsed is moved aside and written again: the folder's
        name is the settings hash, so the caller's config is the one that belongs here.
        """
        record = {"hash": config_hash(config), "non_default": non_default_settings(config), "config": to_dict(config)}
        stored = self._stored_settings()
        if stored is not None:
            if stored.get("hash") != record["hash"] or stored.get("config", {}).get("seed") != config.seed:
                raise SelectivityError(
                    f"{self.path} holds a different run (settings {stored.get('non_default')}, "
                    f"seed {stored.get('config', {}).get('seed')}); expected an empty folder or the same run"
                )
            return
        self.path.mkdir(parents=True, exist_ok=True)
        atomic.write_json(self.config_path, record)

    def _stored_settings(self) -> dict | None:
        """config.json's content; None if it is absent or was damaged (and is now moved aside)."""
        try:
            stored = json.loads(self.config_path.read_text())
            if isinstance(stored, dict) and isinstance(stored.get("config"), dict):
                return stored
            problem = "config.json does not hold a run's settings"
        except FileNotFoundError:
            return None
        except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
            problem = f"config.json cannot be parsed ({type(error).__name__})"
        self.move_aside([self.config_path], problem)
        return None

    def recorded_precision(self) -> str | None:
        """"bf16" or "fp32": what the run's precision resolved to when it started (None: unknown).

        Runs written before config.json recorded it fall back to their first metrics record.
        """
        stored = json.loads(self.config_path.read_text()) if self.config_path.exists() else {}
        if stored.get("precision"):
            return stored["precision"]
        records = self.read_metrics(strict=False)
        return records[0].get("precision") if records else None

    def record_precision(self, precision: str) -> None:
        """Add the resolved precision to config.json (the settings hash "auto", not what it meant)."""
        stored = json.loads(self.config_path.read_text())
        atomic.write_json(self.config_path, {**stored, "precision": precision})

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
        """Rewrite metrics.jsonl atomically (a resumed run drops records past its checkpoint).

        JSON has no NaN or Infinity: a record holding one is refused (the trainer fails such a
        run before writing it), so every line stays readable by any JSON parser.
        """
        try:
            text = "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in records)
        except ValueError as error:
            raise SelectivityError(f"a metrics record of {self.path} is not finite ({error}); expected finite numbers") from None
        atomic.write_text(self.metrics_path, text)

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
        """Write done.json last: it records how many metric records and units the run has, and
        the checkpoint's size and sha256 (analyses and robustness read the final model from it)."""
        self.failed_path.unlink(missing_ok=True)
        record = {"summary": summary, "metric_records": len(self.read_metrics()), "units": len(self.read_units())}
        if self.checkpoint_path.exists():
            record["checkpoint_bytes"] = self.checkpoint_path.stat().st_size
            record["checkpoint_sha256"] = file_sha256(self.checkpoint_path)
        atomic.write_json(self.done_path, record)

    def checkpoint_problem(self, full: bool = False) -> str:
        """Why a done run's checkpoint.pt does not match done.json ("" when it does, or when
        done.json records none). `full` also compares its sha256 (reads the whole file)."""
        done = json.loads(self.done_path.read_text())
        if not isinstance(done, dict) or "checkpoint_bytes" not in done:
            return ""  # a run finished before done.json recorded its checkpoint
        try:
            size = self.checkpoint_path.stat().st_size
        except FileNotFoundError:
            return "checkpoint.pt of a done run is missing"
        if size != done["checkpoint_bytes"]:
            return f"checkpoint.pt is {size} bytes but done.json recorded {done['checkpoint_bytes']} (truncated or overwritten)"
        if full and done.get("checkpoint_sha256") not in (None, file_sha256(self.checkpoint_path)):
            return "checkpoint.pt does not match the sha256 done.json recorded (overwritten or damaged)"
        return ""

    def mark_failed(self, reason: str, epoch: int) -> None:
        atomic.write_json(self.failed_path, {"reason": reason, "epoch": epoch})

    def failure(self) -> dict | None:
        """The failure record, or None when the run has not failed.

        failed.json is written only when a run fails, so one that cannot be parsed still marks
        the run failed, with MALFORMED_FAILURE as its reason (`--retry-failed` moves it aside
        and reruns the run).
        """
        if not self.failed_path.exists():
            return None
        try:
            record = json.loads(self.failed_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            record = None
        if not isinstance(record, dict):
            return {"reason": MALFORMED_FAILURE, "epoch": "?"}
        return record

    def is_done(self) -> bool:
        """True only for a finished run whose files are all whole and agree with done.json.

        Raises:
            OSError: a file could not be read (permissions, an I/O error): that says nothing
                about the run, so it is not answered with "not done" (which would redo it).
        """
        try:
            done = json.loads(self.done_path.read_text())
            records = self.read_metrics(strict=True)
            return bool(
                len(records) == done["metric_records"]
                # the final record is the one results are built from: it must be the summary done.json kept
                and ("summary" not in done or (records and records[-1] == done["summary"]))
                and len(self.read_units()) == done["units"]
                and json.loads(self.config_path.read_text())["hash"]
                and not self.checkpoint_problem()
            )
        except FileNotFoundError:  # not finished (or a file was removed): not a result
            return False
        except Exception as error:
            if is_damage(error):
                return False
            raise

    def summary(self) -> dict:
        return json.loads(self.done_path.read_text())["summary"]

    def move_aside(self, paths: list[Path], reason: str) -> Path | None:
        """Move those of `paths` that exist into a new damaged-<UTC time>-<pid>/ folder of the run.

        Damage is kept for a person to look at, never deleted; one line names where it went.

        Args:
            paths: files of this run folder.
            reason: why they are moved (printed).
        Returns:
            The folder they were moved to, or None if none of them existed.
        """
        present = [path for path in paths if path.exists()]
        if not present:
            return None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        folder = Path(tempfile.mkdtemp(prefix=f"damaged-{stamp}-{os.getpid()}-", dir=self.path))
        for path in present:
            os.replace(path, folder / path.name)
        print(f"moved aside {', '.join(path.name for path in present)} of {self.path} ({reason}) to {folder}",
              flush=True)
        return folder


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_damage(error: BaseException) -> bool:
    """True when `error` says a file's content is damaged (cannot be parsed), not that reading failed.

    Parsers report damage as ValueError (JSON, pyarrow's ArrowInvalid, SelectivityError), KeyError
    or TypeError (a wrong structure), or, for corrupt Parquet pages, an OSError without an errno;
    an OSError with an errno (EACCES, EIO, ...) is the system failing to read, which is not damage.
    """
    if isinstance(error, OSError):
        return error.errno is None
    return isinstance(error, (ValueError, KeyError, TypeError, ArrowException))
