"""A tiny classifier, its data, and the regularized SGD step computed independently of the package.

Used by the Lightning and Hugging Face integration tests: the SI comes from numpy on
activations this file's own hooks record; the gradient from autograd through a
class-by-class formula written here, not from selectivity.metrics.
"""
import numpy as np
import torch
from torch import nn

from tests.reference import reference_selectivity

CLASSES, FEATURES, SAMPLES = 3, 8, 24
UNIT_LAYERS = ("1", "3")  # the two ReLUs of tiny_net()


def tiny_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, CLASSES))


def tiny_data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    inputs = torch.randn(SAMPLES, FEATURES, generator=generator)
    labels = torch.arange(SAMPLES) % CLASSES  # every class in every full batch
    return inputs, labels


def relu_outputs(net: nn.Sequential, inputs: torch.Tensor) -> list[torch.Tensor]:
    """The two ReLU layers' outputs, recorded by hooks of this file."""
    outputs = []
    handles = [net[int(name)].register_forward_hook(lambda m, i, o: outputs.append(o)) for name in UNIT_LAYERS]
    try:
        net(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def numpy_layer_si(net: nn.Sequential, inputs: torch.Tensor, labels: torch.Tensor) -> list[float]:
    with torch.no_grad():
        layers = relu_outputs(net, inputs)
    return [float(reference_selectivity(a.numpy().astype(np.float64), labels.numpy(), CLASSES).mean())
            for a in layers]


def _torch_si(units: torch.Tensor, labels: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    means = torch.stack([units[labels == k].mean(0) for k in range(CLASSES)])  # [K, U]
    top, top_index = means.max(0)
    rest = (means.sum(0) - top) / (CLASSES - 1)
    return ((top - rest) / (top + rest + eps)).mean()


def sgd_step_reference(net: nn.Sequential, inputs, labels, alpha: float, lr: float) -> list[torch.Tensor]:
    """Parameters after one plain SGD step on CE - alpha * mean over layers of mean-unit SI."""
    params = [p.detach().clone().requires_grad_(True) for p in net.parameters()]
    clone = tiny_net()
    with torch.no_grad():
        for target, source in zip(clone.parameters(), params):
            target.copy_(source)
    layers = relu_outputs(clone, inputs)
    logits = clone(inputs)
    mean_si = torch.stack([_torch_si(a, labels) for a in layers]).mean()
    loss = nn.functional.cross_entropy(logits, labels) - alpha * mean_si
    grads = torch.autograd.grad(loss, list(clone.parameters()))
    return [p.detach() - lr * g for p, g in zip(params, grads)]
