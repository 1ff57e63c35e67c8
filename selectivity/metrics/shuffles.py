"""Single-unit metrics under the true labels and S label shuffles, exact and in bounded memory.

Design (docs/unit_toolkit.md, "Memory"): during the one data pass each input's [U] unit
responses are written, as float32, to row `index` of a spill array laid out
[unit chunk, input, unit in chunk] (a memory-mapped file once it would exceed
`in_memory_bytes`, else RAM). Nothing of size K x U x S, or per-unit histograms, is held
during the pass. After the pass each chunk of units is read back contiguously and every
metric is computed exactly from its responses:

- class sums and sums of squares per labeling -> SI, d' (float64);
- ROC-AUC from tie-averaged ranks (Mann-Whitney U): equal to sklearn's roc_auc_score on
  the raw responses, not on bins;
- mutual information on the documented binning: bin 0 holds r <= 0 (a ReLU's silent
  responses), bins 1..B-1 are B - 1 equal widths up to top = the unit's exact largest
  response over every input; so no bin depends on which inputs came first. A unit with
  negative responses (a signed layer's raw responses) is binned from its minimum instead:
  r - min in place of r, so bin 0 holds its minimum.

Rows are addressed by the input's index in the dataset's listing, not by arrival order,
and the S permutations are drawn over that listing at the end, so the values (nulls
included) do not depend on batch size, worker count or reading order. Float32 storage is
exact for float32/bfloat16/float16 activations. Peak memory after the pass is about
8 x N x chunk x 8 bytes (the chunk shrinks as N grows, to keep this near 1 GiB) plus
K x chunk x B x 8 per labeling in flight.
"""
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata

from selectivity.errors import SelectivityError
from selectivity.metrics.selectivity_index import preferred_class, selectivity_index
from selectivity.metrics.unit_metrics import d_prime_from_moments, lifetime_sparseness, rank_auc

NULL_METRICS = ("si", "d_prime", "auc", "mutual_information")
IN_MEMORY_BYTES = 256 * 2**20  # spill arrays up to this size stay in RAM
CHUNK_WORK_BYTES = 2**30  # after the pass, a chunk's working set: about 8 float64/int64 arrays of [N, chunk]


# Each shuffle is one labeling of every input kept in memory ([S+1, N] int64) and one more pass of
# every metric over every chunk: 1,000 resolve permutation p-values to 0.001, and far more would
# exhaust memory before the first result (10**12 shuffles reached 24 GB on CIFAR-sized data).
MAX_SHUFFLES = 1000
MAX_BINS = 1000  # mutual information over more bins than inputs per class is all noise
LABELINGS_BYTES = 2 << 30  # the [S+1, N] labelings may take at most this much memory


@dataclass(frozen=True)
class ShuffleSettings:
    """How `measure` computes the single-unit metrics and their label-shuffle nulls.

    Attributes:
        shuffles: label shuffles S (0: metrics without nulls; else >= 2, a null needs a spread).
        bins: response bins per unit for mutual information (>= 3).
        seed: seeds the S permutations.
    """

    shuffles: int = 10
    bins: int = 20
    seed: int = 0

    def __post_init__(self):
        if self.shuffles < 0 or self.shuffles == 1 or self.shuffles > MAX_SHUFFLES:
            raise SelectivityError(f"shuffles = {self.shuffles}; expected 0 (no null) or 2 to {MAX_SHUFFLES}")
        if not 3 <= self.bins <= MAX_BINS:
            raise SelectivityError(f"bins = {self.bins}; expected 3 (a zero bin and two above it) to {MAX_BINS}")
        if not 0 <= self.seed < 2**63:
            raise SelectivityError(f"shuffle seed = {self.seed}; expected an integer in [0, 2**63)")


def label_shuffles(labels: torch.Tensor, num_classes: int, shuffles: int, seed: int) -> torch.Tensor:
    """[S+1, N] labelings: row 0 the true labels, rows 1..S permutations of them (fixed by seed).

    Labels are checked here, since the metrics index with them.
    """
    labels = labels.cpu()
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise SelectivityError(f"labels span {int(labels.min())}..{int(labels.max())}; "
                               f"expected class indices 0..{num_classes - 1}")
    generator = torch.Generator().manual_seed(seed)
    rows = [labels] + [labels[torch.randperm(len(labels), generator=generator)] for _ in range(shuffles)]
    return torch.stack(rows)


def response_bins(units: torch.Tensor, top: torch.Tensor, bins: int) -> torch.Tensor:
    """[N, U] bin index of each response: 0 for r <= 0, else min(B - 1, 1 + floor(r / width)).

    width = top / (B - 1), top = the unit's largest response, so r = top is in bin B - 1 and
    bin j >= 1 holds [(j - 1) width, j width).
    """
    width = torch.where(top > 0, top, torch.ones_like(top)) / (bins - 1)  # [U]; a silent unit: any width
    index = (units / width).floor().to(torch.int64) + 1
    return torch.where(units > 0, index.clamp(1, bins - 1), torch.zeros_like(index))


@dataclass(frozen=True)
class ShuffledMetrics:
    """Per-unit metrics under S + 1 labelings (row 0 = true labels); units concatenated over layers."""

    layer_names: tuple[str, ...]
    layer_sizes: tuple[int, ...]
    num_inputs: int
    values: dict[str, torch.Tensor]  # NULL_METRICS metric -> [S+1, U] float64
    mean_activation: torch.Tensor  # [U]
    lifetime_sparseness: torch.Tensor  # [U]
    labelings: torch.Tensor  # [S+1, N] over the seen inputs in index order


def entropy_bits(counts: torch.Tensor) -> torch.Tensor:
    """[...] plug-in entropy in bits of the counts along the last axis (0 log 0 = 0)."""
    p = counts / counts.sum(-1, keepdim=True).clamp_min(1)
    return -(p * torch.where(p > 0, p, torch.ones_like(p)).log2()).sum(-1)


def joint_entropy(cells: torch.Tensor, labels: torch.Tensor, classes: int, width: int, bins: int,
                  count: int) -> torch.Tensor:
    """[c] H(R, C) in bits per unit from the occupied (unit, bin, class) cells only.

    A dense [K, c, B] histogram is mostly empty (1,000 classes x 20 bins = 20,000 cells per unit
    for a few thousand inputs) and its size, not the inputs, would set the cost; counting the
    N x c occupied cells by sorting gives the same entropies (sklearn's mutual_info_score,
    tested) at a cost that grows with the inputs.
    """
    keys = cells * classes + labels.unsqueeze(1)  # [N, c]: (unit * B + bin) * K + class, unique per cell
    occupied, counts = torch.unique(keys.flatten(), return_counts=True)
    p = counts.to(torch.float64) / max(count, 1)
    units = occupied // (bins * classes)
    return torch.zeros(width, dtype=torch.float64).index_add_(0, units, -p * p.log2())


def chunk_metrics(responses: torch.Tensor, labelings: torch.Tensor, num_classes: int, bins: int) -> dict[str, torch.Tensor]:
    """{metric: [S+1, c]} for one chunk of units from its exact responses.

    Args:
        responses: [N, c] float64, one row per input.
        labelings: [S+1, N] class indices (checked).
        num_classes: K.
        bins: B for mutual information.
    """
    count, width = responses.shape
    ranks = torch.from_numpy(rankdata(responses.numpy(), axis=0))  # [N, c] tie-averaged, 1-based
    # a signed unit's bins start at its minimum (bin 0 = the minimum), a non-negative one's at 0 (bin 0 = silent)
    low = responses.amin(0).clamp(max=0) if count else torch.zeros(width, dtype=torch.float64)
    shifted = responses - low
    top = shifted.amax(0) if count else torch.zeros(width, dtype=torch.float64)
    cells = torch.arange(width) * bins + response_bins(shifted, top, bins)  # [N, c] (unit, bin)
    squares = responses.square()
    # H(R) per unit does not depend on the labels: once per chunk from the (unit, bin) counts
    response_entropy = entropy_bits(torch.bincount(cells.flatten(), minlength=width * bins).view(width, bins)
                                    .to(torch.float64))
    out = {metric: torch.empty(len(labelings), width, dtype=torch.float64) for metric in NULL_METRICS}
    for row, labels in enumerate(labelings):
        class_counts = torch.bincount(labels, minlength=num_classes).to(torch.float64)  # [K]
        sums = torch.zeros(num_classes, width, dtype=torch.float64).index_add_(0, labels, responses)
        sums_sq = torch.zeros(num_classes, width, dtype=torch.float64).index_add_(0, labels, squares)
        rank_sums = torch.zeros(num_classes, width, dtype=torch.float64).index_add_(0, labels, ranks)
        divisor = class_counts.clamp_min(1).unsqueeze(1)
        means = sums / divisor
        variances = (sums_sq / divisor - means.square()).clamp_min(0)
        preferred = preferred_class(means, class_counts)  # [c]; re-chosen under every labeling
        out["si"][row] = selectivity_index(means, class_counts)
        out["d_prime"][row] = d_prime_from_moments(means, variances, class_counts, preferred)
        out["auc"][row] = rank_auc(rank_sums.gather(0, preferred.unsqueeze(0)).squeeze(0), class_counts[preferred], count)
        out["mutual_information"][row] = (response_entropy + entropy_bits(class_counts)
                                          - joint_entropy(cells, labels, num_classes, width, bins, count)).clamp_min(0)
    return out


class ShuffledAccumulator:
    """Spills [B, U] unit responses by input index; `result()` gives every metric, exactly.

    Args:
        labels: [N] the class of every input of the split, in index order (checked).
        num_classes: K.
        settings: shuffles, bins and seed.
        spill_dir: folder for the memory-mapped spill file (default: the system's temp folder);
            the file is deleted when `close()` or `result()` runs.
        chunk_units: units per chunk (the unit of work after the pass).
        in_memory_bytes: keep the spill array in RAM up to this size.
    """

    def __init__(self, labels: torch.Tensor, num_classes: int, settings: ShuffleSettings,
                 spill_dir: str | Path | None = None, chunk_units: int = 256, in_memory_bytes: int = IN_MEMORY_BYTES):
        label_shuffles(labels, num_classes, 0, 0)  # checks the labels
        labelings = (settings.shuffles + 1) * len(labels) * 8
        if labelings > LABELINGS_BYTES:
            raise SelectivityError(
                f"{settings.shuffles} shuffles of {len(labels)} inputs need {labelings / 2**30:.1f} GiB of labelings; "
                f"expected at most {LABELINGS_BYTES / 2**30:.0f} GiB: fewer shuffles, or a --limit sample")
        self.labels, self.num_classes, self.settings = labels.cpu(), num_classes, settings
        self.spill_dir, self.chunk_units, self.in_memory_bytes = spill_dir, chunk_units, in_memory_bytes
        self.layer_names: tuple[str, ...] | None = None
        self.seen = torch.zeros(len(labels), dtype=torch.bool)
        self._folder: tempfile.TemporaryDirectory | None = None

    def _start(self, activations: dict[str, torch.Tensor]) -> None:
        self.layer_names = tuple(activations)
        self.layer_sizes = tuple(a.shape[1] for a in activations.values())
        units = sum(self.layer_sizes)
        # fewer units per chunk for more inputs, so the post-pass peak stays near CHUNK_WORK_BYTES
        # (256 units up to ~65,000 inputs; 13 for ImageNet's 1.28 M training images)
        fitting = max(1, CHUNK_WORK_BYTES // (64 * max(len(self.labels), 1)))
        self.chunk = min(self.chunk_units, units, fitting)
        shape = (math.ceil(units / self.chunk), len(self.labels), self.chunk)
        if math.prod(shape) * 4 <= self.in_memory_bytes:
            self.spill = np.zeros(shape, dtype=np.float32)
        else:  # on disk: the page cache, not the process, holds what fits
            self._folder = tempfile.TemporaryDirectory(prefix="selectivity-spill-", dir=self.spill_dir)
            self.spill = np.lib.format.open_memmap(Path(self._folder.name) / "responses.npy", mode="w+",
                                                   dtype=np.float32, shape=shape)

    def update(self, activations: dict[str, torch.Tensor], index: torch.Tensor) -> None:
        """Add one batch: `activations` maps layer -> [B, U_l]; `index` [B] the inputs' indices in the split."""
        if self.layer_names is None:
            self._start(activations)
        units = torch.cat([a.detach() for a in activations.values()], 1).float().cpu()  # [B, U]
        index = index.cpu()
        if units.shape[1] != sum(self.layer_sizes) or index.shape != units.shape[:1]:
            raise SelectivityError(f"a batch of {tuple(units.shape)} responses with {tuple(index.shape)} indices; "
                                   f"expected [B, {sum(self.layer_sizes)}] and [B]")
        if len(index) and (int(index.min()) < 0 or int(index.max()) >= len(self.labels) or bool(self.seen[index].any())):
            raise SelectivityError(f"input indices {int(index.min())}..{int(index.max())} repeat or leave "
                                   f"0..{len(self.labels) - 1}; expected each input once")
        self.seen[index] = True
        rows = index.numpy()
        order = np.argsort(rows)  # ascending rows: sequential writes into each chunk
        values = units.numpy()[order]
        padded = self.spill.shape[0] * self.chunk
        if padded > values.shape[1]:
            values = np.pad(values, ((0, 0), (0, padded - values.shape[1])))
        self.spill[:, rows[order], :] = values.reshape(len(rows), self.spill.shape[0], self.chunk).transpose(1, 0, 2)

    def result(self) -> ShuffledMetrics:
        """Every metric under the true labels and the S shuffles of the seen inputs' labels."""
        if self.layer_names is None:
            raise SelectivityError("no batches were seen; expected at least one batch of activations")
        try:
            seen = self.seen.nonzero().squeeze(1)
            labelings = label_shuffles(self.labels[seen], self.num_classes, self.settings.shuffles, self.settings.seed)
            total = sum(self.layer_sizes)
            parts: dict[str, list[torch.Tensor]] = {metric: [] for metric in NULL_METRICS}
            sums, squares, signed = [], [], []
            for chunk in range(self.spill.shape[0]):
                width = min(self.chunk, total - chunk * self.chunk)
                responses = torch.from_numpy(np.asarray(self.spill[chunk][seen.numpy(), :width], dtype=np.float64))
                for metric, values in chunk_metrics(responses, labelings, self.num_classes, self.settings.bins).items():
                    parts[metric].append(values)
                sums.append(responses.sum(0))
                squares.append(responses.square().sum(0))
                signed.append((responses < 0).any(0))
            count = len(seen)
            total_sum, total_square = torch.cat(sums), torch.cat(squares)
            return ShuffledMetrics(
                self.layer_names, self.layer_sizes, count, {m: torch.cat(v, 1) for m, v in parts.items()},
                total_sum / max(count, 1),
                # sparseness is defined for non-negative responses: NaN for a unit with negative raw responses
                torch.where(torch.cat(signed), torch.nan,
                            lifetime_sparseness(total_sum, total_square, max(count, 2))), labelings)
        finally:
            self.close()

    def close(self) -> None:
        """Delete the spill file (also on interruption: measure calls this in a finally)."""
        self.spill = None
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None
