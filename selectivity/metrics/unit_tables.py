"""Per-unit tables from streamed captures, with each layer's layout and signed choice applied and recorded.

Shared by `measure_model` (labelled image splits) and `selectivity.measure` (any loader), so
both compute SI, d' and the nulls the same way:
    SI (and mu_max, mu_rest, preferred class, dead) on the responses the signed choice defines:
        positive / abs: capture's rectified / absolute responses; min_shift: raw class means
        minus the unit's running minimum (metrics.signed); None: raw, refused if negative.
    d' on the raw responses (shift-invariant, defined on signed values).
    AUC, MI, lifetime sparseness and the label-shuffle nulls come from metrics.shuffles
        (responses kept by input index, so order- and batch-free), on the raw responses of every
        layer whatever its signed choice: AUC is rank-based, and MI's bins start at each unit's
        minimum where it is negative (docs/definitions.md#signed-responses).
"""
import pandas as pd
import torch

from selectivity.errors import SelectivityError
from selectivity.metrics.streaming import SelectivityAccumulator
from selectivity.metrics.summary import layer_summary, unit_table
from selectivity.metrics.null_table import chance_layer_summary, shuffled_unit_table
from selectivity.metrics.shuffles import ShuffledAccumulator, ShuffleSettings
from selectivity.metrics.signed import layer_unit_mask, min_shifted_statistics
from selectivity.metrics.unit_metrics import preferred_versus_rest_d_prime


class UnitTables:
    """Streams one capture per batch into SI, d' and (optionally) shuffle statistics.

    Args:
        num_classes: K.
        signed_any: whether a signed choice was made for some layer (then raw responses are kept for d').
        shuffles: ShuffleSettings or None.
        labels: with shuffles, [N] the class of every input, by index (the rows `update` receives).
        spill_dir: with shuffles, where the responses are spilled (metrics.shuffles; default: temp).
    """

    def __init__(self, num_classes: int, signed_any: bool, shuffles: ShuffleSettings | None = None,
                 labels: torch.Tensor | None = None, spill_dir=None):
        self.num_classes, self.signed_any = num_classes, signed_any
        self.si_accumulator: SelectivityAccumulator | None = None
        self.raw_accumulator = SelectivityAccumulator(num_classes, allow_negative=True) if signed_any else None
        if shuffles is not None and labels is None:
            raise SelectivityError("shuffles need every input's label up front; expected labels [N]")
        self.shuffled = ShuffledAccumulator(labels, num_classes, shuffles, spill_dir) if shuffles else None
        self.settings: dict[str, dict[str, object]] = {}

    def update(self, capture, labels: torch.Tensor, index: torch.Tensor | None = None) -> None:
        """Add one batch from a capture.UnitCapture after its forward pass (its activations,
        raw_activations, signed_choices and settings()); `index` [B] the inputs' indices when shuffling."""
        if self.si_accumulator is None:
            self.settings = capture.settings()
            choices = capture.signed_choices
            self.si_accumulator = SelectivityAccumulator(
                self.num_classes, allow_negative={layer for layer, choice in choices.items() if choice})
            self.min_shift_layers = {layer for layer, choice in choices.items() if choice == "min_shift"}
        self.si_accumulator.update(capture.activations, labels)
        if self.raw_accumulator is not None:
            self.raw_accumulator.update(capture.raw_activations, labels)
        if self.shuffled is not None:  # the raw responses: AUC, MI and their nulls need no signed choice
            self.shuffled.update(capture.raw_activations if self.signed_any else capture.activations, index)

    def close(self) -> None:
        """Delete any spill file (on interruption; `tables` deletes it when done)."""
        if self.shuffled is not None:
            self.shuffled.close()

    def tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(units table, layers table), each with the layout, reduction and signed columns."""
        if self.si_accumulator is None:
            raise SelectivityError("no batches were seen; expected at least one batch of inputs")
        stats = self.si_accumulator.result()
        if self.min_shift_layers:
            shifted = layer_unit_mask(stats, self.min_shift_layers)
            stats = min_shifted_statistics(stats, self.si_accumulator.min_activation, shifted)
        units = unit_table(stats)
        if self.raw_accumulator is not None:  # d' on the raw responses
            units["d_prime"] = preferred_versus_rest_d_prime(self.raw_accumulator.result()).cpu().numpy()
        layers = layer_summary(units)
        if self.shuffled is not None:
            units = pd.concat([units, shuffled_unit_table(self.shuffled.result()).drop(columns=["layer", "unit"])], axis=1)
            layers = layers.merge(chance_layer_summary(units), on="layer", how="left", sort=False)
        for column in ("layout", "reduction", "signed"):
            values = {layer: setting[column] for layer, setting in self.settings.items()}
            units[column] = units["layer"].map(values)
            layers[column] = layers["layer"].map(values)
        return units, layers
