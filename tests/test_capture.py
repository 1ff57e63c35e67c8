import pytest
import torch
import torchvision
from torch import nn

from selectivity import SelectivityError, UnitCapture


def tiny_net():
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(5 * 6 * 6, 7), nn.ReLU(), nn.Linear(7, 2),
    )


def hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_conv_maps_are_spatial_means_and_linear_as_is():
    torch.manual_seed(0)
    model, images = tiny_net(), torch.randn(2, 3, 8, 8)
    with UnitCapture(model) as capture:
        model(images)
    assert list(capture.activations) == ["1", "3", "6"]
    assert [tuple(a.shape) for a in capture.activations.values()] == [(2, 4), (2, 5), (2, 7)]
    expected = torch.relu(model[0](images)).mean((2, 3))
    torch.testing.assert_close(capture.activations["1"], expected)


def test_reused_relu_gives_distinct_layers_in_torchvision_resnet18():
    model = torchvision.models.resnet18(num_classes=10).eval()
    with UnitCapture(model) as capture, torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    names = list(capture.activations)
    assert names[0] == "relu"  # the stem's ReLU runs once
    assert "layer1.0.relu#1" in names and "layer1.0.relu#2" in names
    assert len(names) == 1 + 8 * 2  # stem + two call sites in each of 8 blocks
    first, second = capture.activations["layer4.1.relu#1"], capture.activations["layer4.1.relu#2"]
    assert first.shape == second.shape == (2, 512) and not torch.equal(first, second)


def test_blocks_preset_and_explicit_call_site():
    model = torchvision.models.resnet18(num_classes=10).eval()
    with UnitCapture(model, "blocks") as capture, torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    assert list(capture.activations) == [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]
    with UnitCapture(model, ["layer2.1.relu#2", "fc"]) as capture, torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    assert list(capture.activations) == ["layer2.1.relu#2", "fc"]


def test_no_hooks_remain_even_after_an_exception():
    model = tiny_net()
    before = hook_count(model)
    with UnitCapture(model):
        model(torch.randn(1, 3, 8, 8))
    assert hook_count(model) == before
    with pytest.raises(RuntimeError):
        with UnitCapture(model):
            model(torch.randn(1, 2, 8, 8))  # wrong channel count fails inside the forward pass
    assert hook_count(model) == before


def test_graph_is_kept_only_when_asked():
    model = tiny_net()
    with UnitCapture(model, detach=False) as capture:
        model(torch.randn(2, 3, 8, 8))
    assert capture.activations["6"].requires_grad
    with UnitCapture(model) as capture:
        model(torch.randn(2, 3, 8, 8))
    assert not capture.activations["6"].requires_grad


def test_unknown_layer_lists_valid_names():
    with pytest.raises(SelectivityError, match=r"unknown layer name\(s\) \['nope'\]; valid module names are: 0, 1, 2"):
        UnitCapture(tiny_net(), ["nope"])
    with pytest.raises(SelectivityError, match="unknown layer preset"):
        UnitCapture(tiny_net(), "convs")
    with pytest.raises(SelectivityError, match="declares no block_output_layers"):
        UnitCapture(tiny_net(), "blocks")


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_spatial_mean_gradient_in_both_layouts(memory_format):
    from selectivity.capture import reduce_to_units

    maps = torch.rand(3, 4, 5, 6, dtype=torch.float64).contiguous(memory_format=memory_format).requires_grad_()
    assert torch.autograd.gradcheck(reduce_to_units, (maps,))
    reduce_to_units(maps).sum().backward()
    assert maps.grad.is_contiguous(memory_format=memory_format)
    torch.testing.assert_close(maps.grad, torch.full_like(maps, 1 / 30))


def test_a_disabled_capture_records_nothing_and_keeps_its_hooks(monkeypatch):
    import selectivity.capture.units as units

    reductions = []  # every activation a hook stores is reduced to [B, U] first
    reduce = units.pooled_responses
    monkeypatch.setattr(units, "pooled_responses", lambda *args: reductions.append(1) or reduce(*args))
    torch.manual_seed(0)
    model, images = tiny_net(), torch.randn(2, 3, 8, 8)
    before = hook_count(model)
    with UnitCapture(model) as capture:
        hooks = hook_count(model)
        model(images)
        assert list(capture.activations) == ["1", "3", "6"] and len(reductions) == 3
        capture.enabled = False
        output = model(images)
        assert capture.activations == {} and len(reductions) == 3  # no stale pass, no hook's work
        assert hook_count(model) == hooks  # switched off, not removed
        capture.enabled = True
        torch.testing.assert_close(model(images), output)
        assert list(capture.activations) == ["1", "3", "6"] and len(reductions) == 6
    assert hook_count(model) == before


@pytest.mark.parametrize("model, layers, message", [
    (None, "relu", "model is a NoneType; expected a torch.nn.Module"),
    ("net", 5, r"layers = 5; expected a preset \(relu, activations, mlp, blocks\) or a list of module names"),
    ("net", [0], r"layers = \[0\]; expected a preset"),
])
def test_a_model_or_layer_list_of_the_wrong_kind_is_a_one_line_error(model, layers, message):
    with pytest.raises(SelectivityError, match=message):
        UnitCapture(tiny_net() if model == "net" else model, layers)
