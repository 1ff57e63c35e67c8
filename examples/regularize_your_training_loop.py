# %% [markdown]
# # Add the selectivity regularizer to your own training loop
#
# `SelectivityRegularizer` adds `-alpha * mean_SI` of the units it captures to your loss:
# alpha < 0 pushes class selectivity down, alpha > 0 up (Leavitt & Morcos, ICLR 2021). Three
# lines change in a plain PyTorch loop: build the regularizer, run the forward pass inside
# `regularizer.attach(model)`, add `regularizer.penalty(labels)` to the loss. With alpha = 0 the
# penalty is an exact zero and no activation keeps a graph, so training is bitwise the same as
# without it: this script checks that, then trains with alpha = -1 and alpha = +1.
#
# Data: scikit-learn's 8x8 digits, embedded in the package (no download).

# %%
import torch
from torch import nn
from torch.nn.functional import cross_entropy

import selectivity
from selectivity.data import load_dataset

data = load_dataset("digits")
MEAN, STD = data.mean[0], data.std[0]  # the train split's pixel statistics on a [0, 1] scale
train_images = (data.train.images.float() / 255 - MEAN) / STD  # [N, 1, 8, 8]
train_labels = data.train.labels


def make_model() -> nn.Module:
    """Your model: any nn.Module; the regularizer captures its nn.ReLU modules."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * 8 * 8, 64), nn.ReLU(),
        nn.Linear(64, 10),
    )


def batches(epoch: int, batch_size: int = 64):
    order = torch.randperm(len(train_labels), generator=torch.Generator().manual_seed(epoch))
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        yield train_images[index], train_labels[index]


# %% [markdown]
# The plain loop, as you would write it.

# %%
def train_plain(epochs: int = 1) -> nn.Module:
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(epochs):
        for images, labels in batches(epoch):
            loss = cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


# %% [markdown]
# The same loop with the regularizer: the three added lines are marked.

# %%
def train_regularized(alpha: float, epochs: int = 1) -> tuple[nn.Module, float]:
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    regularizer = selectivity.SelectivityRegularizer(alpha=alpha, num_classes=10)  # added
    with regularizer.attach(model):                                                 # added
        for epoch in range(epochs):
            for images, labels in batches(epoch):
                loss = cross_entropy(model(images), labels) + regularizer.penalty(labels)  # added
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    return model, float(regularizer.last_mean_si)  # mean SI of the last training batch


# %% [markdown]
# alpha = 0 is plain training, bit for bit.

# %%
plain = train_plain()
unregularized, _ = train_regularized(alpha=0.0)
for (name, a), b in zip(plain.state_dict().items(), unregularized.state_dict().values()):
    assert torch.equal(a, b), f"{name} differs between plain training and alpha = 0"
print("alpha = 0: every parameter is bitwise identical to plain training")

# %% [markdown]
# Training with alpha = -1, 0 and +1, and the test accuracy and test mean SI each gives (one
# epoch of a toy model; the sweeps in the docs measure the paper's pattern with seeds and CIs).

# %%
def test_accuracy_and_si(model: nn.Module) -> tuple[float, float]:
    images, labels = (data.test.images.float() / 255 - MEAN) / STD, data.test.labels
    accumulator = selectivity.SelectivityAccumulator(num_classes=10)
    with torch.no_grad(), selectivity.UnitCapture(model.eval(), layers="relu") as capture:
        logits = model(images)
        accumulator.update(capture.activations, labels)
    units = selectivity.unit_table(accumulator.result())
    return float((logits.argmax(1) == labels).float().mean()), selectivity.network_mean_si(units)


for alpha in (-1.0, 0.0, 1.0):
    model = unregularized if alpha == 0 else train_regularized(alpha)[0]
    accuracy, mean_si = test_accuracy_and_si(model)
    print(f"alpha = {alpha:+.0f}: test accuracy {100 * accuracy:.1f}%, test mean SI {mean_si:.3f}")
