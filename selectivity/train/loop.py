"""train_run: one run from settings to a finished run folder, resuming where it stopped."""
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from selectivity.alpha_schedule import alpha_at_epoch, parse_alpha
from selectivity.config import ExperimentConfig
from selectivity.data import DatasetSplits, LabelledImages, list_datasets
from selectivity.errors import SelectivityError
from selectivity.measure import measure_model
from selectivity.models import list_models
from selectivity.regularizer import SelectivityRegularizer
from selectivity.store import RunDirectory
from selectivity.train.augment import draw_epoch_randomness
from selectivity.setup import build_model, load_data, probe_model, resolve_device, resolved_precision
from selectivity.train.checkpoint import check_precision, resume_point, save_checkpoint
from selectivity.train.epoch import NonFiniteLoss, train_epoch
from selectivity.train.step import TrainStep, epoch_plan


class RunFailed(RuntimeError):
    """A run ended without a result (e.g. its loss became NaN); its last good checkpoint stays."""

    def __init__(self, reason: str, epoch: int):
        super().__init__(f"run failed at epoch {epoch}: {reason}")
        self.reason, self.epoch = reason, epoch


def check_names(config: ExperimentConfig) -> None:
    """Unknown dataset or model: a one-line error before anything is loaded or trained."""
    if config.data.dataset not in list_datasets():
        raise SelectivityError(f"unknown dataset {config.data.dataset!r}; expected one of {', '.join(list_datasets())}")
    if config.model.name not in list_models():
        raise SelectivityError(f"unknown model {config.model.name!r}; expected one of {', '.join(list_models())}")


def make_optimizer(model: torch.nn.Module, config: ExperimentConfig, device: torch.device,
                   fused: bool | None = None) -> torch.optim.SGD:
    """SGD as the config says; fused (one kernel, reads a tensor lr without a host sync) on CUDA by default.

    Not fused on the CPU by default: the fused CPU kernel rounds differently in the last bit,
    and CPU runs stay bitwise-comparable with the results already recorded.
    """
    settings = config.train
    return torch.optim.SGD(
        model.parameters(), lr=settings.lr, momentum=settings.momentum, nesterov=settings.nesterov,
        weight_decay=settings.weight_decay, fused=device.type == "cuda" if fused is None else fused,
    )


def regularizer_alpha(alpha: float | str, device: torch.device) -> float | torch.Tensor:
    """The regularizer's alpha for a run with this alpha setting (a number or a schedule).

    alpha = 0 throughout: a Python 0, so nothing keeps a graph (exactly plain training);
    otherwise a device tensor (holding the first epoch's value) that each epoch overwrites,
    so a compiled model or a CUDA graph serves every value.
    """
    schedule = parse_alpha(alpha)
    if all(value == 0 for value, _ in schedule):
        return 0.0
    return torch.tensor(float(schedule[0][0]), device=device)


def train_run(
    config: ExperimentConfig, run_dir: str | Path, progress: bool = True, heartbeat: Callable[[int], None] | None = None
) -> dict:
    """Train (or resume, or just read) the run of `config` in `run_dir`.

    Writes config.json, metrics.jsonl (one record per evaluation), checkpoint.pt (every
    epoch), units.parquet and done.json (see selectivity.store). Returns the last metrics
    record. `heartbeat(epochs_done)`, if given, is called after each checkpoint (a sweep checks
    its claim there and records progress). Raises RunFailed, after writing failed.json, when
    the loss becomes NaN or inf.
    Bad input (unknown names, a device that is not here, a dataset or layers SI cannot be
    measured on, images too small for the model) raises SelectivityError before the run
    folder is written.
    """
    run = RunDirectory(run_dir)
    if run.is_done():
        return run.summary()
    check_names(config)
    session = _start_session(config)
    run.claim_settings(config)  # refuses a folder that holds a different run
    epoch, step = resume_point(run, session.model, session.optimizer, session.generator)
    check_precision(run, session.precision, epoch, config.train.allow_precision_change)
    records = [r for r in run.read_metrics(strict=False) if r["epoch"] <= epoch]
    run.write_metrics(records)
    writer = _tensorboard_writer(config, run)
    stepper = _train_step(session)  # after loading the checkpoint: it takes over the optimizer's lr
    final = None
    # Hooks are attached once for the whole run, so a compiled model is traced once.
    with session.regularizer.attach(session.model):
        while epoch < config.train.epochs:
            started = time.perf_counter()
            alpha = session.set_alpha(epoch)
            randomness = draw_epoch_randomness(
                session.generator, len(session.train_labels), config.data.crop_padding, config.data.flip
            ).to(session.device)
            try:
                totals, steps = train_epoch(
                    stepper, epoch_plan(randomness), config, step, progress,
                    f"epoch {epoch + 1}/{config.train.epochs} alpha={alpha:g}",
                )
            except NonFiniteLoss as error:
                run.mark_failed(str(error), epoch + 1)
                raise RunFailed(str(error), epoch + 1) from None
            epoch, step = epoch + 1, step + steps
            if epoch % config.evaluation.every == 0 or epoch == config.train.epochs:
                final = _measure(session)
                if config.evaluation.save_units:
                    run.write_units_snapshot(epoch, final.units)
                records.append(_record(session, epoch, alpha, totals, final, time.perf_counter() - started))
                _fail_if_not_finite(run, records[-1])
                run.write_metrics(records)
                _log(writer, records[-1], progress)
            save_checkpoint(run.checkpoint_path, session.model, session.optimizer, session.generator, epoch, step)
            if heartbeat:  # the sweep's claim is still ours; `epoch` epochs are checkpointed
                heartbeat(epoch)
    if writer:
        writer.close()
    if final is None:  # resumed after the last checkpoint: measure again (same numbers)
        final = _measure(session)
    run.write_units(final.units)
    run.mark_done(records[-1])
    return records[-1]


@dataclass
class Session:
    """What one run holds in memory while it trains."""

    config: ExperimentConfig
    device: torch.device
    data: DatasetSplits
    model: torch.nn.Module
    trained: torch.nn.Module  # the model, or its torch.compile wrapper
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # data order and augmentation; checkpointed
    regularizer: SelectivityRegularizer
    precision: str  # what train.precision resolved to here: "bf16" (autocast) or "fp32"
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_split: LabelledImages

    def set_alpha(self, epoch: int) -> float:
        """alpha of this epoch; a tensor alpha is updated in place (no retrace when compiled)."""
        alpha = alpha_at_epoch(self.config.regularizer.alpha, epoch)
        if isinstance(self.regularizer.alpha, torch.Tensor):
            self.regularizer.alpha.fill_(alpha)
        return alpha

    @property
    def use_bf16(self) -> bool:
        return self.precision == "bf16"


def _start_session(config: ExperimentConfig) -> Session:
    device = resolve_device(config.device)
    data = load_data(config)
    torch.manual_seed(config.seed)
    model = build_model(config, data).to(device)
    if config.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    probe_model(model, data, {"regularizer.layers": config.regularizer.layers,
                              "evaluation.layers": config.evaluation.layers}, device, config.train.channels_last)
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # denormals are slow on x86 and change nothing that matters
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # every step has the same shapes: pick the fastest kernels once
    return Session(
        config=config, device=device, data=data, model=model,
        trained=torch.compile(model) if config.train.compile else model,
        optimizer=make_optimizer(model, config, device),
        generator=torch.Generator().manual_seed(config.seed),
        regularizer=SelectivityRegularizer(
            regularizer_alpha(config.regularizer.alpha, device), data.num_classes, layers=config.regularizer.layers,
            track_every=config.regularizer.track_every,
        ),
        precision=resolved_precision(config.train.precision, device),
        train_images=data.train.images.to(device), train_labels=data.train.labels.to(device),
        test_split=LabelledImages(data.test.images.to(device), data.test.labels.to(device)),
    )


def _train_step(session: Session) -> TrainStep:
    config = session.config
    return TrainStep(
        session.trained, session.optimizer, session.regularizer, session.data, session.train_images,
        session.train_labels, config, session.use_bf16,
        cuda_graphs=config.train.cuda_graphs and session.device.type == "cuda",
    )


def _measure(session: Session):
    config = session.config
    return measure_model(
        session.model, session.test_split, session.data.num_classes, session.data.mean, session.data.std,
        layers=config.evaluation.layers, batch_size=config.evaluation.batch_size, device=session.device,
        channels_last=config.train.channels_last,
    )


def _fail_if_not_finite(run: RunDirectory, record: dict) -> None:
    """A NaN or infinite evaluation (e.g. a test loss that overflowed) fails the run: JSON has no NaN."""
    values = {key: value for key, value in record.items() if isinstance(value, float)}
    for layer, summary in record["layers"].items():
        values.update({f"layers.{layer}.{key}": value for key, value in summary.items() if isinstance(value, float)})
    bad = [f"{key} = {value}" for key, value in values.items() if not math.isfinite(value)]
    if bad:
        reason = f"evaluation after epoch {record['epoch']} is not finite ({', '.join(bad[:3])})"
        run.mark_failed(reason, record["epoch"])
        raise RunFailed(reason, record["epoch"])


def _tensorboard_writer(config: ExperimentConfig, run: RunDirectory):
    if not config.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise SelectivityError("tensorboard = true needs the tensorboard package; pip install selectivity[tensorboard]") from None
    return SummaryWriter(log_dir=str(run.path / "tensorboard"))


def _log(writer, record: dict, progress: bool) -> None:
    if writer:
        for key, value in record.items():
            if isinstance(value, (int, float)) and key != "epoch":
                writer.add_scalar(key, value, record["epoch"])
    if progress:
        print(
            f"epoch {record['epoch']}: alpha {record['alpha']:g} train loss {record['train_loss']:.4f} "
            f"batch SI {record['train_batch_si']:.3f} | test acc {record['test_accuracy']:.4f} "
            f"mean SI {record['mean_si']:.3f} dead {record['dead_fraction']:.3f} ({record['seconds']:.1f}s)",
            flush=True,
        )


def _record(session: Session, epoch: int, alpha: float, totals, measurement, seconds: float) -> dict:
    return {
        "epoch": epoch,
        "alpha": alpha,
        "precision": session.precision,
        "lr": float(session.optimizer.param_groups[0]["lr"]),  # a device tensor under CUDA graphs
        "train_loss": totals.loss.item() / totals.images,
        "train_accuracy": totals.correct.item() / totals.images,
        # the mean over the measured batches; a regularizer that never measures (not the trainer's) logs 0
        "train_batch_si": totals.selectivity.item() / max(totals.measured_batches, 1),
        "train_batch_si_every": session.regularizer.measure_every,  # absent in older records: every step
        "test_accuracy": measurement.accuracy,
        "test_loss": measurement.loss,
        "mean_si": measurement.mean_si,
        "dead_fraction": measurement.dead_fraction,
        "seconds": seconds,
        # layer_index is the capture (call) order: JSON objects and sorted keys lose order, so it is stored.
        "layers": {
            row.layer: {"layer_index": index, "mean_si": row.mean_si, "dead_fraction": row.dead_fraction,
                        "num_units": int(row.num_units)}
            for index, row in enumerate(measurement.layers.itertuples())
        },
    }
