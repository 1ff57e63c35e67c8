"""One optimisation step on a batch of device-resident uint8 images; on a GPU, optionally a CUDA graph.

A ResNet20 step at batch 128 is a few hundred small kernels, and on an H100 launching them
takes longer than running them. With `train.cuda_graphs` the whole step (crop and flip,
normalisation, forward, cross-entropy, selectivity penalty, backward, fused SGD, the
epoch's running totals) is captured once per batch size and replayed, so a step costs a
handful of launches. What changes between steps lives in buffers the graph reads: the
batch plan (image indices and augmentation choices), the learning rate (a device tensor
the optimizer reads) and alpha (the regularizer's device tensor).

Every call is a real training step: the first WARMUP_STEPS of each batch size run eagerly
on a side stream (CUDA graphs need warmed-up kernels and existing momentum buffers) and
only then is the step captured, so the number of steps and the recipe are unchanged.
"""
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from torch import nn

from selectivity.config import ExperimentConfig
from selectivity.data.base import DatasetSplits
from selectivity.data.batches import normalize_images
from selectivity.errors import SelectivityError
from selectivity.regularizer import SelectivityRegularizer
from selectivity.train.augment import EpochRandomness, crop_and_flip

WARMUP_STEPS = 3


def epoch_plan(randomness: EpochRandomness) -> torch.Tensor:
    """[4, N] int64: per position in the epoch, the image, its crop offsets and its flip."""
    order = randomness.order
    return torch.stack([order, randomness.row_offsets[order], randomness.column_offsets[order],
                        randomness.flips[order].long()])


@dataclass
class EpochTotals:
    """Sums kept on the device during the epoch and read once at its end."""

    loss: torch.Tensor
    selectivity: torch.Tensor
    correct: torch.Tensor
    nonfinite: torch.Tensor
    batches: int = 0
    images: int = 0
    measured_batches: int = 0  # the batches whose mu_SI is in `selectivity` (every k-th at alpha == 0)

    @classmethod
    def zeros(cls, device: torch.device) -> "EpochTotals":
        zero = lambda dtype=torch.float32: torch.zeros((), dtype=dtype, device=device)  # noqa: E731
        return cls(zero(), zero(), zero(torch.int64), zero(torch.bool))

    def reset(self) -> None:
        """In place: a captured graph keeps adding into these very tensors."""
        for tensor in (self.loss, self.selectivity, self.correct, self.nonfinite):
            tensor.zero_()
        self.batches = self.images = self.measured_batches = 0


class Replayable(Protocol):
    def replay(self) -> None: ...


def capture_cuda_graph(step: Callable[[torch.Tensor], None], plan: torch.Tensor) -> Replayable:
    """Record step(plan) into a CUDA graph (nothing runs while recording); each graph gets its own memory pool."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step(plan)
    return graph


class TrainStep:
    """Trains `model` one batch per call; holds the epoch totals.

    Args:
        model: the model to train (or its torch.compile wrapper), with `regularizer` attached.
        optimizer: its optimizer; with graphs its lr becomes a device tensor owned here.
        regularizer: gives the penalty (its alpha a device tensor when it may change).
        data: for the normalisation statistics.
        train_images, train_labels: the whole training set on the device ([N, C, H, W] uint8, [N]).
        config: augmentation, batch size, label smoothing, channels_last.
        use_bf16: autocast the forward pass to bf16.
        cuda_graphs: capture and replay the step (CUDA devices only).
        capture: how a step is recorded (tests pass a CPU stand-in for capture_cuda_graph).
    """

    def __init__(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, regularizer: SelectivityRegularizer,
        data: DatasetSplits, train_images: torch.Tensor, train_labels: torch.Tensor, config: ExperimentConfig,
        use_bf16: bool, cuda_graphs: bool = False,
        capture: Callable[[Callable[[torch.Tensor], None], torch.Tensor], Replayable] = capture_cuda_graph,
    ):
        self.model, self.optimizer, self.regularizer, self.data = model, optimizer, regularizer, data
        self.train_images, self.train_labels, self.config, self.use_bf16 = train_images, train_labels, config, use_bf16
        self.device = train_images.device
        if cuda_graphs and capture is capture_cuda_graph and self.device.type != "cuda":
            raise SelectivityError(f"cuda_graphs needs the training data on a CUDA device; it is on {self.device}")
        if cuda_graphs and regularizer.track_selectivity and regularizer.measure_every > 1:
            # a replay repeats the captured step as it was recorded, measuring or not
            raise SelectivityError(f"cuda_graphs with the regularizer measuring every {regularizer.measure_every} steps; "
                                   "expected track_every = 1 with CUDA graphs")
        self.totals = EpochTotals.zeros(self.device)
        self.last_objective = torch.zeros((), device=self.device)
        self.cuda_graphs, self._capture = cuda_graphs, capture
        self._graphs: dict[int, tuple[Replayable, torch.Tensor]] = {}  # batch size -> (graph, its plan buffer)
        self._eager_steps: Counter = Counter()
        self.lr: torch.Tensor | None = None
        if cuda_graphs:  # float32: the fused SGD kernel reads lr as a float
            self.lr = torch.tensor(float(optimizer.param_groups[0]["lr"]), dtype=torch.float32, device=self.device)
            for group in optimizer.param_groups:
                group["lr"] = self.lr

    def start_epoch(self) -> None:
        self.totals.reset()
        self.model.train()

    def __call__(self, plan: torch.Tensor, lr: float) -> None:
        """One step on the batch `plan` ([4, B] int64, see epoch_plan) at learning rate `lr`."""
        batch = plan.shape[1]
        measured = self.regularizer.start_step(self.totals.batches)
        if self.lr is None:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        else:
            self.lr.fill_(lr)
        if not self.cuda_graphs:
            self._step(plan)
        elif batch in self._graphs:
            self._replay(batch, plan)
        elif self._eager_steps[batch] < WARMUP_STEPS:
            self._warmup_step(plan)
            self._eager_steps[batch] += 1
        else:
            buffer = plan.contiguous().clone()
            self._graphs[batch] = (self._capture(self._step, buffer), buffer)
            self._replay(batch, plan)  # recording ran nothing: this replay is the step
        self.totals.batches += 1
        self.totals.images += batch
        self.totals.measured_batches += int(measured)

    def saw_nonfinite(self) -> bool:
        """Whether any loss so far this epoch was NaN or inf (one host sync)."""
        return bool(self.totals.nonfinite)

    def _replay(self, batch: int, plan: torch.Tensor) -> None:
        graph, buffer = self._graphs[batch]
        buffer.copy_(plan)
        graph.replay()

    def _warmup_step(self, plan: torch.Tensor) -> None:
        if self.device.type != "cuda":  # the CPU stand-in used by tests has no streams
            self._step(plan)
            return
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            self._step(plan)
        torch.cuda.current_stream(self.device).wait_stream(side)

    def _step(self, plan: torch.Tensor) -> None:
        """The step itself; reads only `plan`, persistent tensors and the lr/alpha tensors (graph-safe)."""
        config, totals = self.config, self.totals
        chosen = plan[0]
        images = self.train_images[chosen]  # [B, C, H, W] uint8
        if config.data.crop_padding > 0 or config.data.flip:
            images = crop_and_flip(images, plan[1], plan[2], plan[3].bool(), config.data.crop_padding)
        labels = self.train_labels[chosen]
        inputs = normalize_images(images, self.data.mean, self.data.std, config.train.channels_last)
        # No autocast weight cache: a captured graph must not keep casts made outside it.
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16, cache_enabled=False):
            logits = self.model(inputs)
        loss = nn.functional.cross_entropy(logits.float(), labels, label_smoothing=config.train.label_smoothing)
        objective = loss + self.regularizer.penalty(labels)
        self.optimizer.zero_grad(set_to_none=True)
        objective.backward()
        self.optimizer.step()
        totals.loss += loss.detach() * labels.shape[0]
        if self.regularizer.last_mean_si is not None:
            totals.selectivity += self.regularizer.last_mean_si
        totals.correct += (logits.detach().argmax(1) == labels).sum()
        totals.nonfinite |= ~torch.isfinite(objective.detach())
        self.last_objective.copy_(objective.detach())
