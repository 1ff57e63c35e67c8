# %% [markdown]
# # Measure a torchvision model's units on a labelled image folder
#
# Class selectivity (SI) of every ReLU unit of a torchvision ResNet18, streamed over an image
# folder laid out as `root/{train,test}/<class>/<image>`, then mean SI by depth. The folder is
# generated here (three classes of 32x32 images that differ in colour) and the weights are
# random (`weights=None`), so this runs anywhere in seconds; point `ROOT` at your own folder and
# load your own weights for a real measurement.
#
# Needs the `torchvision` extra: `pip install "selectivity[torchvision]"`.

# %%
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt
import numpy as np
import torch
import torchvision
from PIL import Image

import selectivity
from selectivity.data import load_dataset

OUT = Path("example_outputs") / "measure_torchvision_model"
OUT.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)

# %% [markdown]
# A tiny labelled image folder: each class has its own dominant colour channel plus noise.

# %%
ROOT = OUT / "images"
rng = np.random.default_rng(0)
for split, per_class in (("train", 4), ("test", 12)):
    for label, name in enumerate(("red", "green", "blue")):
        folder = ROOT / split / name
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            pixels = rng.integers(0, 96, size=(32, 32, 3))
            pixels[..., label] += 150
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{index}.png")

data = load_dataset("imagefolder", root=ROOT)
print(data.name, data.class_names, "test images:", len(data.test))

# %% [markdown]
# A torchvision model with random weights, in eval mode, and ImageNet input statistics (the
# ones its pretrained weights expect).

# %%
model = torchvision.models.resnet18(weights=None, num_classes=data.num_classes).eval()
mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

# %% [markdown]
# Stream the test split through the model. `UnitCapture` records every ReLU call's [B, U] unit
# activations (torchvision reuses one ReLU module per block, so each call is its own layer,
# `relu#k`); the accumulator keeps per-class sums, so the result does not depend on the batch size.

# %%
accumulator = selectivity.SelectivityAccumulator(num_classes=data.num_classes)
with torch.no_grad(), selectivity.UnitCapture(model, layers="relu") as capture:
    for start in range(0, len(data.test), 8):
        images = data.test.images[start:start + 8].float() / 255
        labels = data.test.labels[start:start + 8]
        model((images - mean) / std)
        accumulator.update(capture.activations, labels)

units = selectivity.unit_table(accumulator.result())  # one row per unit
layers = selectivity.layer_summary(units)             # one row per layer, in depth order
units.to_csv(OUT / "units.csv", index=False)
print(layers.to_string(index=False))
print("network mean SI:", round(selectivity.network_mean_si(units), 4))

# %% [markdown]
# Mean SI by depth.

# %%
figure, axes = plt.subplots(figsize=(7, 3))
axes.plot(range(len(layers)), layers["mean_si"], marker="o")
axes.set_xticks(range(len(layers)), layers["layer"], rotation=90, fontsize=7)
axes.set_ylabel("mean class selectivity")
axes.set_title("ResNet18 (random weights), SI by depth")
figure.tight_layout()
figure.savefig(OUT / "si_by_depth.png", dpi=100)
print("wrote", OUT / "si_by_depth.png")
