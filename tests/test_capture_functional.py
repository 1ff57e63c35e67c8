"""Unit capture of ReLUs applied functionally (F.relu, torch.relu, x.relu()), found by torch.fx."""
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from selectivity import SelectivityError, UnitCapture
from selectivity.data import LabelledImages
from selectivity.measure import measure_model


class FunctionalBlock(nn.Module):
    """A CIFAR ResNet block written the common way: F.relu after bn1 and after the sum."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels)
        self.conv2, self.bn2 = nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + x)


class FunctionalNet(nn.Module):
    """torch.relu in the stem, F.relu in the blocks, x.relu() before the classifier, one nn.ReLU module."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.layer1 = nn.Sequential(FunctionalBlock(4), FunctionalBlock(4))
        self.hidden, self.act = nn.Linear(4, 6), nn.ReLU()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        out = self.layer1(torch.relu(self.stem(x)))
        pooled = out.mean((2, 3)).relu()  # a no-op on non-negative maps, but a call site all the same
        return self.fc(self.act(self.hidden(pooled)))


def spatial_mean(maps):
    return maps.mean((2, 3))


@pytest.fixture
def net_and_images():
    torch.manual_seed(0)
    net = FunctionalNet().eval()
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
    return net, torch.randn(5, 3, 6, 6)


def test_functional_calls_are_captured_with_call_site_names_in_call_order(net_and_images):
    net, images = net_and_images
    with UnitCapture(net) as capture, torch.no_grad():
        net(images)
    assert list(capture.activations) == [
        "relu()#1", "layer1.0.relu()#1", "layer1.0.relu()#2", "layer1.1.relu()#1", "layer1.1.relu()#2",
        "relu()#2", "act"]


def test_captured_values_equal_the_intermediates_computed_by_hand(net_and_images):
    net, images = net_and_images
    with UnitCapture(net) as capture, torch.no_grad():
        logits = net(images)
    with torch.no_grad():  # the forward pass written out step by step
        stem = torch.clamp(net.stem(images), min=0)
        block = net.layer1[0]
        inner = torch.clamp(block.bn1(block.conv1(stem)), min=0)
        first_out = torch.clamp(block.bn2(block.conv2(inner)) + stem, min=0)
        hidden = torch.clamp(net.hidden(net.layer1[1](first_out).mean((2, 3))), min=0)
        expected_logits = net.fc(hidden)
    torch.testing.assert_close(capture.activations["relu()#1"], spatial_mean(stem))
    torch.testing.assert_close(capture.activations["layer1.0.relu()#1"], spatial_mean(inner))
    torch.testing.assert_close(capture.activations["layer1.0.relu()#2"], spatial_mean(first_out))
    torch.testing.assert_close(capture.activations["act"], hidden)
    torch.testing.assert_close(logits, expected_logits)  # the traced forward computes what the model computes


def test_explicit_call_site_and_restored_forward(net_and_images):
    net, images = net_and_images
    with UnitCapture(net, ["layer1.1.relu()#2", "hidden"]) as capture, torch.no_grad():
        net(images)
    assert list(capture.activations) == ["layer1.1.relu()#2", "hidden"]
    assert "forward" not in net.__dict__
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


def test_gradients_flow_through_functional_sites(net_and_images):
    net, images = net_and_images
    with UnitCapture(net, ["layer1.0.relu()#1"], detach=False) as capture:
        net(images)
        capture.activations["layer1.0.relu()#1"].sum().backward()
    assert net.layer1[0].conv1.weight.grad.abs().sum() > 0
    assert net.fc.weight.grad is None  # the classifier lies after the captured site


class ModeDependent(nn.Module):
    """Python branching on self.training: traced once per mode, never frozen at one."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, x):
        out = self.linear(x)
        return F.relu(out) if self.training else F.relu(-out)


def test_switching_training_mode_inside_the_context_follows_the_mode():
    torch.manual_seed(0)
    model, inputs = ModeDependent().eval(), torch.randn(3, 4)
    with UnitCapture(model) as capture, torch.no_grad():
        evaluated = capture.model(inputs)
        assert torch.equal(capture.activations["relu()"], torch.clamp(-model.linear(inputs), min=0))
        model.train()
        trained = model(inputs)
        assert torch.equal(capture.activations["relu()"], torch.clamp(model.linear(inputs), min=0))
    assert torch.equal(evaluated, torch.clamp(-model.linear(inputs), min=0)) and torch.equal(trained, model(inputs))


def test_torchvision_resnet18_reused_relu_keeps_its_call_sites():
    torch.manual_seed(0)
    model, images = torchvision.models.resnet18(num_classes=10).eval(), torch.randn(2, 3, 32, 32)
    with UnitCapture(model) as capture, torch.no_grad():
        model(images)
    names = list(capture.activations)
    assert names == ["relu"] + [f"layer{s}.{b}.relu#{k}" for s in range(1, 5) for b in range(2) for k in (1, 2)]
    assert "forward" not in model.__dict__  # no functional call site: the model's own forward ran
    with torch.no_grad():
        stem = model.maxpool(model.relu(model.bn1(model.conv1(images))))
        block_output = model.layer1[0](stem)  # relu#2 of layer1.0 is the block's output
    torch.testing.assert_close(capture.activations["layer1.0.relu#2"], spatial_mean(block_output))


class DataDependent(nn.Module):
    """Branches on the input's values: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.linear, self.act = nn.Linear(4, 4), nn.ReLU()

    def forward(self, x):
        out = self.act(self.linear(x))
        return F.relu(out - 1) if out.sum() > 0 else out


def test_untraceable_model_falls_back_to_module_hooks_and_says_so():
    torch.manual_seed(0)
    model, inputs = DataDependent(), torch.randn(3, 4)
    with pytest.warns(UserWarning, match="DataDependent cannot be traced by torch.fx .*capturing modules only"):
        capture = UnitCapture(model)
    with capture, torch.no_grad():
        outputs = model(inputs)
    assert list(capture.activations) == ["act"]
    torch.testing.assert_close(capture.activations["act"], torch.clamp(model.linear(inputs), min=0))
    assert torch.equal(outputs, model(inputs))


@pytest.mark.parametrize("activation", [nn.GELU(), nn.SiLU(), nn.LeakyReLU(0.1)])
def test_signed_activations_are_refused(activation):
    model = nn.Sequential(nn.Linear(4, 8), activation, nn.Linear(8, 2))
    with pytest.raises(SelectivityError, match=f"no ReLU units, only {type(activation).__name__} activations"):
        UnitCapture(model)
    split = LabelledImages(torch.randint(0, 256, (20, 1, 2, 2), dtype=torch.uint8), torch.arange(20) % 2)
    flat = nn.Sequential(nn.Flatten(), *model)
    with pytest.raises(SelectivityError, match="layer 2 has negative activations"):  # named explicitly: the existing check
        measure_model(flat, split, 2, (0.5,), (0.25,), layers=["2"], batch_size=20, device=torch.device("cpu"),
                      progress=False)


def test_the_command_prints_a_warning_on_one_line(capsys, monkeypatch):
    from selectivity.cli import main, measure_command

    def run_capturing_an_untraceable_model(args):
        UnitCapture(DataDependent())
        return 0

    monkeypatch.setattr(measure_command, "run", run_capturing_an_untraceable_model)
    assert main(["measure", "--model", "small_cnn", "--dataset", "digits"]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "selectivity measure: warning: DataDependent cannot be traced by torch.fx (TraceError: symbolically traced "
        "variables cannot be used as inputs to control flow); capturing modules only: functional relu calls in its "
        "forward are not captured"]


def test_a_disabled_capture_records_no_functional_site(net_and_images):
    net, images = net_and_images
    with UnitCapture(net) as capture:
        capture.enabled = False
        net(images)
        assert capture.activations == {} and capture._pending == []
        capture.enabled = True
        net(images)
        assert list(capture.activations) == ["relu()#1", "layer1.0.relu()#1", "layer1.0.relu()#2",
                                             "layer1.1.relu()#1", "layer1.1.relu()#2", "relu()#2", "act"]
