"""What a unit responds to: the k inputs that drive it most and least, as a labelled image grid.

A unit's response to an input is its activation (a conv channel's spatial mean, as for SI),
from one eval-mode pass over the split that keeps only the chosen units' responses.
"""
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # never opens a window; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from selectivity.atomic import atomic_path  # noqa: E402
from selectivity.capture import UnitCapture  # noqa: E402
from selectivity.data.base import LabelledImages  # noqa: E402
from selectivity.data.batches import normalize_images  # noqa: E402
from selectivity.errors import SelectivityError  # noqa: E402

COLUMNS = 8


@torch.no_grad()
def unit_responses(model: nn.Module, split: LabelledImages, mean, std, layer: str, units: list[int],
                   batch_size: int = 500, device: str | torch.device = "cpu") -> torch.Tensor:
    """[N, len(units)] responses of `units` of `layer` to every input of `split` (float64, CPU).

    Args:
        layer: a module name (`name#k` for one call of a module that runs several times).
    """
    was_training = model.training
    model.eval()
    parts = []
    try:
        with UnitCapture(model, [layer]) as capture:
            for start in range(0, len(split), batch_size):
                model(normalize_images(split.images[start:start + batch_size].to(device), mean, std))
                if len(capture.activations) != 1:
                    raise SelectivityError(f"layer {layer} ran {len(capture.activations)} times in a forward pass; "
                                           f"expected one call: name it {layer}#k")
                activations = next(iter(capture.activations.values()))  # [B, U]
                if max(units) >= activations.shape[1] or min(units) < 0:
                    raise SelectivityError(f"unit {max(units)} of layer {layer}; expected 0..{activations.shape[1] - 1}")
                parts.append(activations[:, units].double().cpu())
    finally:
        model.train(was_training)
    return torch.cat(parts)


def top_and_bottom(responses: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the k largest responses (largest first) and the k smallest (smallest first); ties by index."""
    order = np.argsort(-responses, kind="stable")
    return order[:k], np.argsort(responses, kind="stable")[:k]


def _draw(axes, split: LabelledImages, indices, responses, class_names) -> None:
    for ax in axes:
        ax.axis("off")
    for ax, index in zip(axes, indices):
        image = split.images[int(index)].cpu()  # [C, H, W] uint8
        pixels = image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy()
        ax.imshow(pixels, cmap="gray" if image.shape[0] == 1 else None, vmin=0, vmax=255)
        label = int(split.labels[int(index)])
        ax.set_title(f"{class_names[label] if label < len(class_names) else label}\n{responses[index]:.3g}", fontsize=7)


def write_topk_grid(path: str | Path, split: LabelledImages, responses: np.ndarray, k: int,
                    class_names: tuple[str, ...], title: str) -> tuple[np.ndarray, np.ndarray]:
    """Write a PNG: the k top inputs (upper block) and k bottom inputs (lower block), each titled with
    its class and response. Returns (top indices, bottom indices)."""
    top, bottom = top_and_bottom(responses, k)
    rows = math.ceil(k / COLUMNS)
    columns = min(k, COLUMNS)
    figure, axes = plt.subplots(2 * rows, columns, figsize=(1.2 * columns, 1.45 * 2 * rows + 0.6), squeeze=False)
    _draw(axes[:rows].ravel(), split, top, responses, class_names)
    _draw(axes[rows:].ravel(), split, bottom, responses, class_names)
    figure.suptitle(f"{title}\nupper: top {k} inputs; lower: bottom {k} (class, response)", fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(figure)
    return top, bottom
