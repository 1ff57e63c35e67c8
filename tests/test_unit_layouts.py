"""Unit layouts, token reductions, signed choices, presets and globs; bad input in one line each;
timm / Hugging Face sources of `selectivity measure`. References are computed here in numpy."""
import json

import numpy as np
import pytest
import torch
from torch import nn

import selectivity
from selectivity.capture import UnitCapture, UnitLayout, reduce_with_layout
from selectivity.capture.layouts import pooled_responses
from selectivity.cli import main
from selectivity.errors import SelectivityError
from selectivity.metrics import SelectivityAccumulator
from selectivity.metrics.signed import layer_unit_mask, min_shifted_statistics


class TokenNet(nn.Module):
    """[B, 3, 4] tokens -> GELU MLP on tokens -> mean -> logits; declares no layout of its own."""

    def __init__(self):
        super().__init__()
        self.fc1, self.act, self.head = nn.Linear(4, 6), nn.GELU(), nn.Linear(6, 3)

    def forward(self, x):
        return self.head(self.act(self.fc1(x)).mean(1))


def test_token_reductions_equal_numpy_means_with_prefix_and_mask():
    values = torch.randn(5, 4, 3, dtype=torch.float64)
    array = values.numpy()
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]])
    patch = reduce_with_layout(values, UnitLayout("tokens", "patch_mean", 2))
    np.testing.assert_allclose(patch, array[:, 2:].mean(1))
    np.testing.assert_allclose(reduce_with_layout(values, UnitLayout("tokens", "cls", 1)), array[:, 0])
    everything = reduce_with_layout(values, UnitLayout("tokens", "all_mean", 1), signed="abs", mask=mask)
    weights = mask.numpy()[:, :, None]
    np.testing.assert_allclose(everything, (np.abs(array) * weights).sum(1) / weights.sum(1))
    channels_last = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    np.testing.assert_allclose(reduce_with_layout(channels_last, UnitLayout("channels_last"), signed="positive"),
                               np.maximum(channels_last.numpy(), 0).mean((1, 2)))


@pytest.mark.parametrize("signed", ["positive", "abs"])
def test_sliced_pooling_of_signed_and_raw_responses_equals_numpy(signed, monkeypatch):
    # Slices of 3 rows (of 7, so the last is short) with a padding mask that differs per row.
    values = torch.randn(7, 5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    monkeypatch.setattr("selectivity.capture.layouts.SLICE_BYTES", 3 * values[0].numel() * 8)
    mask = (torch.arange(5)[None, :] < torch.tensor([5, 2, 3, 1, 4, 5, 2])[:, None]).long()
    units, raw = pooled_responses(values, UnitLayout("tokens", "patch_mean", 1), signed, mask, keep_raw=True)
    array, weights = values.numpy()[:, 1:], mask.numpy()[:, 1:, None]
    transformed = np.maximum(array, 0) if signed == "positive" else np.abs(array)
    np.testing.assert_allclose(units, (transformed * weights).sum(1) / np.maximum(weights.sum(1), 1))
    np.testing.assert_allclose(raw, (array * weights).sum(1) / np.maximum(weights.sum(1), 1))
    conv = torch.randn(7, 3, 2, 2, dtype=torch.float64)
    conv_units, conv_raw = pooled_responses(conv, UnitLayout("conv"), signed, keep_raw=True)
    conv_transformed = np.maximum(conv.numpy(), 0) if signed == "positive" else np.abs(conv.numpy())
    np.testing.assert_allclose(conv_units, conv_transformed.mean((2, 3)))
    np.testing.assert_allclose(conv_raw, conv.numpy().mean((2, 3)))
    only_units, same = pooled_responses(values, UnitLayout("tokens", "cls"), signed, keep_raw=False)
    assert same is only_units
    np.testing.assert_allclose(only_units, np.maximum(values.numpy()[:, 0], 0) if signed == "positive"
                               else np.abs(values.numpy()[:, 0]))


def test_min_shift_streamed_over_batches_equals_numpy_on_shifted_responses():
    generator = torch.Generator().manual_seed(3)
    responses = torch.randn(40, 5, generator=generator, dtype=torch.float64) * 2 - 1  # signed
    labels = torch.arange(40) % 4
    accumulator = SelectivityAccumulator(4, allow_negative={"layer"})
    for start in range(0, 40, 7):  # uneven batches: the minimum is a running one
        accumulator.update({"layer": responses[start : start + 7]}, labels[start : start + 7])
    stats = accumulator.result()
    shifted = min_shifted_statistics(stats, accumulator.min_activation, layer_unit_mask(stats, {"layer"}))
    array = responses.numpy() - responses.numpy().min(0)
    means = np.stack([array[labels.numpy() == k].mean(0) for k in range(4)])
    rest = (means.sum(0) - means.max(0)) / 3
    np.testing.assert_allclose(shifted.selectivity(), (means.max(0) - rest) / (means.max(0) + rest + 1e-7),
                               rtol=1e-10)


def test_declared_token_layout_and_globs_record_layout_reduction_and_signed():
    torch.manual_seed(0)
    model, inputs = TokenNet(), torch.randn(6, 3, 4)
    with UnitCapture(model, ["f*", "act"], layouts={"fc1": "tokens:patch_mean:1", "act": "tokens"}, tokens="cls",
                     signed={"act": "positive"}, keep_raw=True) as capture, torch.no_grad():
        model(inputs)
        hidden = model.fc1(inputs)
    np.testing.assert_allclose(capture.activations["fc1"], hidden[:, 1:].mean(1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(capture.activations["act"], np.maximum(nn.functional.gelu(hidden)[:, 0], 0))
    np.testing.assert_allclose(capture.raw_activations["act"], nn.functional.gelu(hidden)[:, 0])
    assert capture.settings() == {
        "fc1": {"layout": "tokens", "reduction": "tokens:patch_mean(skip 1)", "signed": "none"},
        "act": {"layout": "tokens", "reduction": "tokens:cls", "signed": "positive"}}


def test_presets_find_every_activation_mlp_activation_and_block():
    import timm

    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, depth=2)
    with UnitCapture(model, "activations") as everything, UnitCapture(model, "blocks") as blocks:
        pass
    assert list(everything._call_filter) == ["blocks.0.mlp.act", "blocks.1.mlp.act"]
    assert list(blocks._call_filter) == ["blocks.0", "blocks.1"]


def bad(call):
    with pytest.raises(SelectivityError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message
    return message


def run_token_net(**options):
    model = TokenNet()
    with UnitCapture(model, options.pop("layers", ["act"]), **options), torch.no_grad():
        model(torch.randn(2, 3, 4))


def test_bad_layouts_patterns_and_signed_choices_are_one_line():
    assert "whose layout is not known" in bad(lambda: run_token_net()) and "tokens" in bad(lambda: run_token_net())
    assert "matches no layer" in bad(lambda: run_token_net(layers=["blocks.*"]))
    assert "layout pattern 'mlp*' matches no layer" in bad(lambda: run_token_net(layouts={"mlp*": "tokens"}))
    assert "signed pattern" in bad(lambda: run_token_net(layouts="tokens", signed={"nothing": "abs"}))
    assert "expected None" in bad(lambda: run_token_net(layouts="tokens", signed="relu"))
    assert "layout 'grid' is not known" in bad(lambda: run_token_net(layouts="grid"))
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    with UnitCapture(conv, ["1"], layouts="tokens") as capture:
        assert "a token reduction on a layer without tokens" in bad(lambda: conv(torch.randn(1, 1, 5, 5)))
    with UnitCapture(conv, ["1"], tokens="cls") as capture:
        assert "no recorded layer has tokens" in bad(lambda: conv(torch.randn(1, 1, 5, 5)))
    del capture


def test_signed_layer_with_no_choice_is_refused_and_a_choice_measures_it():
    torch.manual_seed(0)
    model = TokenNet()
    batches = [(torch.randn(8, 3, 4), torch.arange(8) % 3)]
    message = bad(lambda: selectivity.measure(model, batches, num_classes=3, layers=["act"], layouts="tokens"))
    assert "negative activations" in message and "positive, min_shift or abs" in message
    units, layers, summary = selectivity.measure(model, batches, num_classes=3, layers=["act"], layouts="tokens",
                                                 signed="min_shift")
    assert list(layers["signed"]) == ["min_shift"] and summary["num_inputs"] == 8
    assert (units["si"] >= 0).all()


def measure_cli(*argv):
    return main(["measure", "--no-progress", *map(str, argv)])


def cli_error(capsys, *argv):
    assert measure_cli(*argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


def test_model_source_bad_input_is_one_line(tmp_path, capsys):
    import timm

    assert "unknown timm model 'vit_tiny_patch16'" in cli_error(capsys, "--timm", "vit_tiny_patch16", "--dataset",
                                                                 "digits")
    torch.save(timm.create_model("resnet10t", pretrained=False).state_dict(), tmp_path / "resnet.pt")
    line = cli_error(capsys, "--timm", "vit_tiny_patch16_224", "--weights", tmp_path / "resnet.pt", "--dataset", "digits")
    assert "does not fit timm vit_tiny_patch16_224" in line
    (tmp_path / "folder").mkdir()
    assert "is not a Hugging Face model folder" in cli_error(capsys, "--hf", tmp_path / "folder", "--dataset", "digits")
    assert "matches no layer" in cli_error(capsys, "--model", "small_cnn", "--dataset", "digits", "--layers", "blocks.*")


def test_timm_and_hf_sources_record_layouts_in_summary_json(tmp_path):
    import timm
    import transformers

    torch.manual_seed(0)
    options = ["--model-option", "img_size=8", "--model-option", "patch_size=4", "--model-option", "in_chans=1",
               "--model-option", "depth=1"]
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10, img_size=8, patch_size=4,
                              in_chans=1, depth=1)
    torch.save(model.state_dict(), tmp_path / "vit.pt")
    assert measure_cli("--timm", "vit_tiny_patch16_224", "--weights", tmp_path / "vit.pt", *options, "--dataset",
                       "digits", "--layers", "mlp", "--signed", "abs", "--limit", 60, "--out", tmp_path / "a") == 0
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["layers"] == {"blocks.0.mlp.act": {"layout": "tokens", "reduction": "tokens:patch_mean(skip 1)",
                                                      "signed": "abs"}}
    config = transformers.ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                    image_size=8, patch_size=4, num_channels=1, num_labels=10)
    transformers.ViTForImageClassification(config).save_pretrained(tmp_path / "hf")
    assert measure_cli("--hf", tmp_path / "hf", "--dataset", "digits", "--normalize", "dataset", "--layers", "blocks",
                       "--tokens", "all_mean", "--signed", "positive", "--limit", 60, "--out", tmp_path / "b") == 0
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["layers"]["vit.layers.0"] == {"layout": "tokens", "reduction": "tokens:all_mean",
                                                 "signed": "positive"}
