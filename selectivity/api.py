"""`selectivity.measure(model, loader, ...)`: per-unit selectivity of any model on any labelled loader, in one call.

The notebook entry point. The loader yields `(inputs, labels)` or dicts of tensors (a Hugging
Face text batch: input_ids, attention_mask, labels; an image batch: pixel_values, labels); the
model takes the inputs (a dict is passed as keyword arguments, labels left out). Responses are
reduced to class sums batch by batch (metrics.unit_tables, the same code `selectivity measure`
uses), never kept. A dict's attention_mask masks padding out of token means. Label-shuffle
nulls need every input's label before the pass, so with `shuffles` the loader is iterated once
for its labels first (no forward pass).
"""
from typing import NamedTuple

import pandas as pd
import torch
from torch import nn

from selectivity.capture import UnitCapture
from selectivity.errors import SelectivityError
from selectivity.metrics import network_mean_si
from selectivity.metrics.shuffles import ShuffleSettings
from selectivity.metrics.unit_tables import UnitTables
from selectivity.setup import resolve_device

LABEL_KEYS = ("labels", "label")


class UnitMeasurement(NamedTuple):
    """What `measure` returns: `units, layers, summary = selectivity.measure(...)`."""

    units: pd.DataFrame  # one row per unit: layer, unit, si, preferred_class, mu_max, mu_rest, d_prime, dead, layout, ...
    layers: pd.DataFrame  # one row per layer: num_units, mean_si, dead units, layout, reduction, signed (+ nulls)
    summary: dict  # num_inputs, accuracy (when the model gives [B, K] logits), mean_si, per-layer settings


def split_batch(batch, device: torch.device):
    """(model inputs on `device`, labels [B] on `device`, padding mask [B, N] or None) of one loader batch."""
    if isinstance(batch, dict):
        label_key = next((key for key in LABEL_KEYS if key in batch), None)
        if label_key is None:
            raise SelectivityError(f"a loader batch is a dict with keys {sorted(batch)}; expected a 'labels' entry")
        inputs = {key: value.to(device) for key, value in batch.items() if key != label_key}
        return inputs, batch[label_key].to(device), inputs.get("attention_mask")
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0].to(device), batch[1].to(device), None
    raise SelectivityError(f"a loader batch is a {type(batch).__name__}; expected (inputs, labels) or a dict of "
                           "tensors holding 'labels'")


def loader_labels(loader) -> torch.Tensor:
    """[N] every label of the loader, in its order (for label shuffles fixed before the pass)."""
    return torch.cat([split_batch(batch, torch.device("cpu"))[1] for batch in loader])


def logits_of(output) -> torch.Tensor:
    return output.logits if hasattr(output, "logits") else output


@torch.no_grad()
def measure(model: nn.Module, loader, num_classes: int, layers="relu", tokens: str | None = None, signed=None,
            shuffles: int | None = None, layouts=None, device: str | torch.device = "cpu", bins: int = 20,
            shuffle_seed: int = 0) -> UnitMeasurement:
    """Per-unit class selectivity (SI, d'; with shuffles AUC, MI, sparseness and nulls) of `model` on `loader`.

    Args:
        model: any nn.Module taking the loader's inputs; eval mode during the pass, restored after.
        loader: iterable of (inputs, labels) or dicts of tensors with "labels"; must give the
            same order when iterated twice if `shuffles` is set.
        num_classes: K (labels are 0..K-1).
        layers: preset ("relu", "activations", "mlp", "blocks"), or module names / globs.
        tokens: token reduction of token layers: "patch_mean" (default), "cls", "all_mean".
        signed: None (refuse negative responses), "positive", "min_shift", "abs", or {glob: choice}.
        shuffles: None for SI and d' only; 0 for AUC/MI/sparseness without nulls; S >= 2 for nulls.
        layouts: declared layouts for layers the model does not state (see UnitCapture).
        device: where the model runs ("auto", "cpu", "cuda", ...); the model is moved there.
        bins, shuffle_seed: response bins for AUC/MI and the shuffles' seed.
    Returns:
        UnitMeasurement(units, layers, summary).
    """
    if not isinstance(model, nn.Module):
        raise SelectivityError(f"model is a {type(model).__name__}; expected a torch.nn.Module")
    device = resolve_device(str(device))
    settings = ShuffleSettings(shuffles, bins, shuffle_seed) if shuffles is not None else None
    all_labels = loader_labels(loader) if settings else None  # the loader is read twice: same order both times
    signed_any = signed is not None and (not isinstance(signed, dict) or any(signed.values()))
    tables = UnitTables(num_classes, signed_any, settings, all_labels)
    model.to(device)
    was_training = model.training
    model.eval()
    seen, correct, has_logits = 0, 0, True
    try:
        with UnitCapture(model, layers, layouts=layouts, tokens=tokens, signed=signed, keep_raw=signed_any) as capture:
            for batch in loader:
                inputs, labels, mask = split_batch(batch, device)
                capture.token_mask = mask
                logits = logits_of(model(**inputs) if isinstance(inputs, dict) else model(inputs))
                if settings and not torch.equal(labels.cpu(), all_labels[seen : seen + len(labels)]):
                    raise SelectivityError("the loader gave its inputs in another order the second time; expected "
                                           "the same order on every pass with shuffles (no shuffle=True)")
                tables.update(capture, labels, torch.arange(seen, seen + len(labels)) if settings else None)
                has_logits = has_logits and isinstance(logits, torch.Tensor) and logits.dim() == 2
                if has_logits:
                    correct += int((logits.argmax(1) == labels).sum())
                seen += len(labels)
    except BaseException:
        tables.close()
        raise
    finally:
        model.train(was_training)
    units, layer_table = tables.tables()
    summary = {"num_inputs": seen, "num_classes": num_classes, "accuracy": correct / seen if has_logits else None,
               "mean_si": network_mean_si(units), "layers": tables.settings}
    return UnitMeasurement(units, layer_table, summary)
