"""Random-weight timm and Hugging Face models, built offline: captured unit responses equal an
independent computation (timm's forward_intermediates, HF hidden_states, or hooks written here
doing the reduction in numpy), and SI, d' and AUC from `selectivity.measure` equal numpy/sklearn
references on those responses."""
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import selectivity
from selectivity.capture import UnitCapture

timm = pytest.importorskip("timm")
transformers = pytest.importorskip("transformers")

CLASSES, INPUTS, BINS = 4, 24, 20


def image_batches(size=32, batch=12):
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(INPUTS, 3, size, size, generator=generator)
    labels = torch.arange(INPUTS) % CLASSES
    return [(images[i : i + batch], labels[i : i + batch]) for i in range(0, INPUTS, batch)]


def hooked_outputs(model, names, run):
    """{module name: concatenated raw output over the batches}, by plain forward hooks written here."""
    outputs = {name: [] for name in names}
    modules = dict(model.named_modules())
    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: outputs[n].append(
        (o[0] if isinstance(o, tuple) else o).detach().numpy())) for n in names]
    try:
        with torch.no_grad():
            run()
    finally:
        for handle in handles:
            handle.remove()
    return {n: np.concatenate(parts) for n, parts in outputs.items()}


def numpy_si(responses, labels):
    means = np.stack([responses[labels == k].mean(0) for k in range(CLASSES)])  # [K, U]
    mu_max = means.max(0)
    mu_rest = (means.sum(0) - mu_max) / (CLASSES - 1)
    return (mu_max - mu_rest) / (mu_max + mu_rest + 1e-7), means.argmax(0)


def numpy_d_prime(responses, labels):
    preferred = np.stack([responses[labels == k].mean(0) for k in range(CLASSES)]).argmax(0)
    values = []
    for unit, k in enumerate(preferred):
        inside, rest = responses[labels == k, unit], responses[labels != k, unit]
        spread = np.sqrt((inside.var() + rest.var()) / 2)
        values.append((inside.mean() - rest.mean()) / spread if spread > 0 else 0.0)
    return np.array(values)


def sklearn_auc(responses, labels, preferred, first_batch=None):
    """roc_auc_score of the preferred class against the rest on the responses themselves (exact, no bins;
    0.5 for a constant response). `first_batch` is unused: the AUC does not depend on the input order."""
    return np.array([roc_auc_score(labels == k, responses[:, u]) if responses[:, u].std() > 0 else 0.5
                     for u, k in enumerate(preferred)])


def check_metrics(model, batches, expected, layers, **options):
    """selectivity.measure's SI, d', AUC on `layers` equal numpy/sklearn on `expected`.

    `expected`: {layer: (responses SI is defined on [N, U], raw pooled responses [N, U])}; for
    "positive"/"abs" the first is the pooled rectified/absolute output, for "min_shift" and None
    the raw responses (min_shift subtracts each unit's minimum here, in the reference)."""
    units, layer_table, summary = selectivity.measure(model, batches, num_classes=CLASSES, layers=layers,
                                                      shuffles=0, bins=BINS, **options)
    labels = torch.cat([b[1] if isinstance(b, tuple) else b["labels"] for b in batches]).numpy()
    first = len(batches[0][1] if isinstance(batches[0], tuple) else batches[0]["labels"])
    signed = options.get("signed")
    assert list(layer_table["layer"]) == list(expected)
    for layer, (positive, raw) in expected.items():
        rows = units[units["layer"] == layer]
        if signed == "min_shift":
            positive = raw - raw.min(0)
        si, preferred = numpy_si(positive, labels)
        np.testing.assert_allclose(rows["si"], si, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(rows["d_prime"], numpy_d_prime(raw, labels), rtol=1e-4, atol=1e-4)
        # AUC on the raw responses whatever the signed choice, for the class of the largest raw mean
        raw_preferred = np.stack([raw[labels == k].mean(0) for k in range(CLASSES)]).argmax(0)
        auc = sklearn_auc(raw[:, :48], labels, raw_preferred[:48], first)  # sklearn per unit: 48 suffice
        np.testing.assert_allclose(rows["auc"].to_numpy()[:48], auc, atol=1e-9)
        signed_units = (raw < 0).any(0)  # sparseness is for non-negative responses: NaN where a unit goes negative
        assert rows["lifetime_sparseness"].isna().to_numpy().tolist() == signed_units.tolist()
        assert set(rows["signed"]) == {signed or "none"}
    return units, layer_table, summary


def captured(model, batches, layers, **options):
    """{layer: [N, U]} from UnitCapture over the batches (the code under test)."""
    parts = {}
    with UnitCapture(model, layers, **options) as capture, torch.no_grad():
        for inputs, _ in batches:
            model(inputs)
            for name, units in capture.activations.items():
                parts.setdefault(name, []).append(units.numpy())
    return {n: np.concatenate(p) for n, p in parts.items()}, capture.settings()


@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "deit_tiny_patch16_224"])
def test_timm_vit_block_outputs_equal_forward_intermediates_patch_mean(name):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=CLASSES, img_size=32, depth=3).eval()
    batches = image_batches()
    responses, settings = captured(model, batches, "blocks")
    with torch.no_grad():  # timm's own per-block outputs, patch tokens split from the prefix tokens
        intermediates = [model.forward_intermediates(x, output_fmt="NLC", return_prefix_tokens=True,
                                                     intermediates_only=True) for x, _ in batches]
    for index in range(3):
        patches = np.concatenate([batch[index][0].numpy() for batch in intermediates])  # [N, 4, 192]
        np.testing.assert_allclose(responses[f"blocks.{index}"], patches.mean(1), rtol=1e-5, atol=1e-6)
    assert settings["blocks.0"] == {"layout": "tokens", "reduction": "tokens:patch_mean(skip 1)", "signed": "none"}
    patches = {i: np.concatenate([b[i][0].numpy() for b in intermediates]) for i in range(3)}
    check_metrics(model, batches, {f"blocks.{i}": (np.abs(p).mean(1), p.mean(1)) for i, p in patches.items()},
                  "blocks", signed="abs")
    check_metrics(model, batches, {f"blocks.{i}": (None, p.mean(1)) for i, p in patches.items()}, "blocks",
                  signed="min_shift")


def test_timm_vit_mlp_neurons_positive_part_and_cls_token():
    torch.manual_seed(1)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=CLASSES, img_size=32,
                              depth=2).eval()
    batches = image_batches()
    names = ["blocks.0.mlp.act", "blocks.1.mlp.act"]
    hooked = hooked_outputs(model, names, lambda: [model(x) for x, _ in batches])  # [N, 5, 768] GELU outputs
    positive, _ = captured(model, batches, "mlp", signed="positive")
    cls, settings = captured(model, batches, "mlp", tokens="cls")
    for name in names:
        np.testing.assert_allclose(positive[name], np.maximum(hooked[name], 0)[:, 1:].mean(1), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(cls[name], hooked[name][:, 0], rtol=1e-6, atol=1e-7)
    assert settings[names[0]]["reduction"] == "tokens:cls"
    check_metrics(model, batches, {n: (np.maximum(hooked[n], 0)[:, 1:].mean(1), hooked[n][:, 1:].mean(1))
                                   for n in names}, "mlp", signed="positive")


@pytest.mark.parametrize("name", ["convnext_atto", "efficientnet_b0", "mobilenetv3_small_100"])
def test_timm_cnn_stage_outputs_equal_forward_intermediates(name):
    torch.manual_seed(2)
    model = timm.create_model(name, pretrained=False, num_classes=CLASSES).eval()
    batches = image_batches()
    with torch.no_grad():
        intermediates = [model.forward_intermediates(x, intermediates_only=True) for x, _ in batches]
    stages = [info["module"] for info in model.feature_info][:len(intermediates[0])]
    responses, settings = captured(model, batches, stages)
    expected = {}
    for index, stage in enumerate(stages):
        maps = np.concatenate([batch[index].numpy() for batch in intermediates])  # [N, C, H, W]
        expected[stage] = (np.maximum(maps, 0).mean((2, 3)), maps.mean((2, 3)))
        np.testing.assert_allclose(responses[stage], maps.mean((2, 3)), rtol=1e-5, atol=1e-6)
        assert settings[stage]["layout"] == "conv"
    check_metrics(model, batches, expected, stages, signed="positive")


def test_timm_convnext_channels_last_mlp_is_averaged_over_space_not_channels():
    torch.manual_seed(3)
    model = timm.create_model("convnext_atto", pretrained=False, num_classes=CLASSES, conv_mlp=False).eval()
    batches = image_batches()
    names = ["stages.0.blocks.0.mlp.act", "stages.1.blocks.0.mlp.fc2"]
    hooked = hooked_outputs(model, names, lambda: [model(x) for x, _ in batches])  # [N, H, W, C]
    responses, settings = captured(model, batches, names, signed="abs")
    for name in names:
        assert hooked[name].shape[-1] == responses[name].shape[1]  # units are the last (channel) axis
        np.testing.assert_allclose(responses[name], np.abs(hooked[name]).mean((1, 2)), rtol=1e-5, atol=1e-6)
        assert settings[name]["layout"] == "channels_last"
    check_metrics(model, batches, {n: (np.abs(hooked[n]).mean((1, 2)), hooked[n].mean((1, 2))) for n in names},
                  names, signed="abs")


def small_hf_vit():
    config = transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                    image_size=16, patch_size=4, num_labels=CLASSES)
    torch.manual_seed(4)
    return transformers.ViTForImageClassification(config).eval()


def test_hf_vit_layers_equal_hidden_states_without_the_cls_token():
    model = small_hf_vit()
    batches = image_batches(size=16)
    with torch.no_grad():
        hidden = [model(x, output_hidden_states=True).hidden_states for x, _ in batches]
    responses, settings = captured(model, batches, "blocks")
    expected = {}
    for index, layer in enumerate(settings):
        expected[layer] = (None, np.concatenate([h[index + 1].numpy() for h in hidden])[:, 1:].mean(1))
        np.testing.assert_allclose(responses[layer], expected[layer][1], rtol=1e-5, atol=1e-6)
    assert list(settings) == ["vit.layers.0", "vit.layers.1"]
    check_metrics(model, batches, expected, "blocks", signed="min_shift")


def test_bert_style_classifier_masked_token_mean_and_cls_from_dict_batches():
    config = transformers.BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, num_labels=CLASSES)
    torch.manual_seed(5)
    model = transformers.BertForSequenceClassification(config).eval()
    generator = torch.Generator().manual_seed(1)
    lengths = torch.randint(3, 10, (INPUTS,), generator=generator)
    ids = torch.randint(1, 60, (INPUTS, 10), generator=generator)
    mask = (torch.arange(10).unsqueeze(0) < lengths.unsqueeze(1)).long()
    ids = ids * mask  # padding id 0 after each sequence
    labels = torch.arange(INPUTS) % CLASSES
    batches = [{"input_ids": ids[i : i + 12], "attention_mask": mask[i : i + 12], "labels": labels[i : i + 12]}
               for i in range(0, INPUTS, 12)]
    names = ["bert.encoder.layer.0.intermediate.intermediate_act_fn", "bert.encoder.layer.1"]
    hooked = hooked_outputs(model, names, lambda: [model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
                                                   for b in batches])
    weights = mask.numpy()[:, :, None].astype(np.float64)
    masked_mean = lambda values: (values * weights).sum(1) / weights.sum(1)  # noqa: E731 -- real tokens only
    expected = {n: (masked_mean(np.maximum(hooked[n], 0)), masked_mean(hooked[n])) for n in names}
    units, layer_table, summary = check_metrics(model, batches, expected, names, signed="positive")
    assert set(layer_table["layout"]) == {"tokens"}
    cls_units, _, _ = selectivity.measure(model, batches, num_classes=CLASSES, layers=names, tokens="cls",
                                          signed="positive")
    first = cls_units[cls_units["layer"] == names[1]]
    si, _ = numpy_si(np.maximum(hooked[names[1]][:, 0], 0), labels.numpy())
    np.testing.assert_allclose(first["si"], si, rtol=1e-4, atol=1e-5)
