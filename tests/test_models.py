"""Models stage: every registered model, parametrized over the registry (timm style)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.overrides import TorchFunctionMode

from selectivity.errors import SelectivityError
from selectivity.models import create_model, list_models, register_model

# name -> (num_classes, parameters). CIFAR ResNets: He et al. 2016 Table 6 (0.27M, 0.46M,
# 0.66M, 0.85M), counted by hand in docs/models.md. vit_cifar: counted by hand in tests/test_vit_cifar.py. resnet18/50 "cifar" stem: torchvision's
# count at 200 classes minus the 7x7 -> 3x3 stem difference, 3 * 64 * (49 - 9) = 7,680.
PINNED_PARAMETERS = {
    "resnet20": (10, 269_722),
    "resnet32": (10, 464_154),
    "resnet44": (10, 658_586),
    "resnet56": (10, 853_018),
    "vgg16": (10, 14_728_266),
    "resnet18": (200, 11_271_432),
    "resnet50": (200, 23_910_152),
    "small_cnn": (10, 65_514),
    "vit_cifar": (10, 311_338),
}
NATIVE_INPUT = {"resnet18": (3, 64), "resnet50": (3, 64), "small_cnn": (1, 8)}  # others: (3, 32)
BLOCKS_PER_MODEL = {"resnet20": 9, "resnet32": 15, "resnet44": 21, "resnet56": 27, "resnet18": 8, "resnet50": 16}
# Every registered model, plus the non-default torchvision stem of the Tiny ImageNet ResNets.
MODEL_CASES = [(name, {}) for name in list_models()] + [
    ("resnet18", {"stem": "imagenet"}), ("resnet50", {"stem": "imagenet"})]
CASE_IDS = [name + "".join(f"-{value}" for value in options.values()) for name, options in MODEL_CASES]


def native_batch(name: str, batch_size: int) -> torch.Tensor:
    channels, size = NATIVE_INPUT.get(name, (3, 32))
    return torch.randn(batch_size, channels, size, size)  # [B, C, H, W]


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


class ReluCallCounter(TorchFunctionMode):
    """Counts every relu call (and threshold, which vit_cifar's units use as max(x, 0)), functional or
    from a module, to catch ReLUs that no hook sees."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if any(word in getattr(func, "__name__", "") for word in ("relu", "threshold")):
            self.calls += 1
        return func(*args, **(kwargs or {}))


def test_registry_lists_every_paper_model():
    assert set(PINNED_PARAMETERS) == set(list_models())


@pytest.mark.parametrize("name, options", MODEL_CASES, ids=CASE_IDS)
def test_forward_shape_finite_and_every_parameter_gets_gradient(name, options):
    torch.manual_seed(0)
    num_classes = 7
    model = create_model(name, num_classes, **options).train()
    logits = model(native_batch(name, 2))
    assert logits.shape == (2, num_classes)
    assert torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.tensor([0, 3])).backward()
    without_gradient = [parameter_name for parameter_name, parameter in model.named_parameters()
                        if parameter.grad is None or not parameter.grad.abs().sum() > 0]
    assert without_gradient == []


@pytest.mark.parametrize("name", list_models())
def test_parameter_count_is_pinned(name):
    num_classes, expected = PINNED_PARAMETERS[name]
    assert count_parameters(create_model(name, num_classes)) == expected


@pytest.mark.parametrize("name, options", MODEL_CASES, ids=CASE_IDS)
def test_unit_layers_are_relu_modules_firing_once_in_forward_order(name, options):
    model = create_model(name, 5, **options).eval()
    modules = dict(model.named_modules())
    relu_names = [module_name for module_name, module in modules.items() if isinstance(module, nn.ReLU)]
    assert sorted(model.unit_layers) == sorted(relu_names)  # every hidden ReLU is a unit layer
    assert all(not modules[layer_name].inplace for layer_name in model.unit_layers)
    fired: list[str] = []
    handles = [modules[layer_name].register_forward_hook(lambda *_, layer_name=layer_name: fired.append(layer_name))
               for layer_name in model.unit_layers]
    try:
        with torch.no_grad(), ReluCallCounter() as counter:
            model(native_batch(name, 2))
    finally:
        for handle in handles:
            handle.remove()
    assert tuple(fired) == model.unit_layers  # each once, in forward order
    assert counter.calls == len(model.unit_layers)  # no functional or hidden relu elsewhere


@pytest.mark.parametrize("name", list_models())
def test_block_outputs_are_an_ordered_subset_of_unit_layers(name):
    model = create_model(name, 10)
    assert model.block_output_layers
    positions = [model.unit_layers.index(layer_name) for layer_name in model.block_output_layers]
    assert positions == sorted(positions)
    if name in BLOCKS_PER_MODEL:  # ResNets: one output (after the residual add) per block
        assert len(model.block_output_layers) == BLOCKS_PER_MODEL[name]
    else:  # VGG, the small CNN and the ViT (one MLP hidden layer a block): every unit layer
        assert model.block_output_layers == model.unit_layers


@pytest.mark.parametrize("name, torchvision_factory", [
    ("resnet18", torchvision.models.resnet18), ("resnet50", torchvision.models.resnet50)])
def test_imagenet_stem_matches_torchvision_exactly(name, torchvision_factory):
    torch.manual_seed(0)
    reference = torchvision_factory(num_classes=200).eval()
    model = create_model(name, 200, stem="imagenet").eval()
    assert count_parameters(model) == count_parameters(reference)
    model.load_state_dict(reference.state_dict(), strict=True)
    inputs = native_batch(name, 2)
    with torch.no_grad():
        torch.testing.assert_close(model(inputs), reference(inputs), rtol=0, atol=1e-5)


@pytest.mark.parametrize("size", [8, 7])
def test_zero_pad_shortcut_is_subsample_and_pad_and_keeps_channels_last_in_backward(size):
    from selectivity.models.resnet_cifar import ZeroPadShortcut
    torch.manual_seed(0)
    leaf = torch.randn(2, 4, size, size).contiguous(memory_format=torch.channels_last).requires_grad_()
    gradients = []
    inputs = leaf.clone()  # not a leaf: a leaf's .grad is re-laid-out to match it, hiding the layout autograd passes on
    inputs.register_hook(gradients.append)
    outputs = ZeroPadShortcut(4)(inputs)
    reference_leaf = leaf.detach().clone().requires_grad_()
    reference = F.pad(reference_leaf[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2))  # option A as He et al. write it
    assert torch.equal(outputs, reference)
    upstream = torch.randn_like(outputs).contiguous(memory_format=torch.channels_last)
    outputs.backward(upstream)
    reference.backward(upstream)
    assert torch.equal(leaf.grad, reference_leaf.grad)
    assert gradients[0].is_contiguous(memory_format=torch.channels_last)  # no mixed-layout add in the block


def test_in_channels_option_changes_the_stem():
    grayscale = create_model("resnet20", 10, in_channels=1)
    assert grayscale(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    color_digits = create_model("small_cnn", 10, in_channels=3)
    assert color_digits(torch.randn(2, 3, 12, 12)).shape == (2, 10)  # any size, not only 8x8


def test_unknown_model_error_lists_the_registry():
    with pytest.raises(SelectivityError) as error:
        create_model("resnet21", 10)
    assert "\n" not in str(error.value)
    assert all(name in str(error.value) for name in list_models())


@pytest.mark.parametrize("name, num_classes, options", [
    ("resnet18", 10, {"stem": "cifar10"}),  # unknown stem
    ("resnet20", 10, {"stem": "imagenet"}),  # option the model does not take
    ("resnet20", 0, {}),
    ("resnet20", 10.0, {}),
])
def test_bad_options_raise_one_line_selectivity_error(name, num_classes, options):
    with pytest.raises(SelectivityError):
        create_model(name, num_classes, **options)


def test_registering_a_taken_name_is_refused():
    def resnet20(num_classes: int = 10, **kwargs) -> nn.Module:
        return nn.Linear(1, num_classes)

    with pytest.raises(SelectivityError):
        register_model(resnet20)


@pytest.fixture
def one_thread():
    """Tiny ops on 2 shared cores run faster (and steadier) on one thread than two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_small_cnn_learns_digits_above_95_percent(one_thread):
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    torch.manual_seed(0)
    images, labels = sklearn_datasets.load_digits(return_X_y=True)
    images = torch.tensor(images, dtype=torch.float32).reshape(-1, 1, 8, 8)  # [N, 1, 8, 8]
    labels = torch.tensor(labels)
    order = torch.randperm(len(labels))
    train_index, test_index = order[:1400], order[1400:]
    mean, std = images[train_index].mean(), images[train_index].std()
    images = (images - mean) / std  # the trainer normalises; the model never does
    model = create_model("small_cnn", 10)
    epochs, batch_size = 4, 64  # 5 seeds: 98.2-99.8% test accuracy, ~1.5 s on one thread
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=5e-3, total_steps=epochs * -(-len(train_index) // batch_size))
    for _ in range(epochs):
        for batch_index in train_index[torch.randperm(len(train_index))].split(batch_size):
            loss = F.cross_entropy(model(images[batch_index]), labels[batch_index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    with torch.no_grad():
        accuracy = (model.eval()(images[test_index]).argmax(1) == labels[test_index]).float().mean()
    assert accuracy > 0.95
