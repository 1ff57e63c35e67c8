"""The Lightning callback through lightning.Trainer on CPU: exact alpha = 0, the regularized step, the logs."""
import copy
import logging

import pytest
import torch

lightning = pytest.importorskip("lightning")

from selectivity import SelectivityError  # noqa: E402
from selectivity.integrations.lightning import SelectivityCallback  # noqa: E402
from tests.framework_reference import (  # noqa: E402
    numpy_layer_si, sgd_step_reference, tiny_data, tiny_net, UNIT_LAYERS)

LR = 0.5


class Classifier(lightning.LightningModule):
    def __init__(self, net, selectivity=None):
        super().__init__()
        self.net = net
        self.selectivity = selectivity

    def configure_callbacks(self):
        return [self.selectivity] if self.selectivity is not None else []

    def forward(self, inputs):
        return self.net(inputs)

    def training_step(self, batch, batch_index):
        inputs, labels = batch
        loss = torch.nn.functional.cross_entropy(self(inputs), labels)
        return self.selectivity.regularize(loss, labels) if self.selectivity is not None else loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=LR)


def fit(module, tmp_path, steps):
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    inputs, labels = tiny_data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(inputs, labels), batch_size=len(labels))
    trainer = lightning.Trainer(accelerator="cpu", devices=1, max_steps=steps, logger=False,
                                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                default_root_dir=tmp_path, num_sanity_val_steps=0)
    trainer.fit(module, loader)
    return trainer


def test_alpha_zero_trains_bit_identical_weights(tmp_path):
    plain, regularized = Classifier(tiny_net()), Classifier(tiny_net(), SelectivityCallback(0.0, num_classes=3))
    fit(plain, tmp_path / "plain", steps=3)
    trainer = fit(regularized, tmp_path / "regularized", steps=3)
    for a, b in zip(plain.net.parameters(), regularized.net.parameters()):
        assert torch.equal(a, b)
    assert trainer.logged_metrics["selectivity/penalty"] == 0.0
    assert "selectivity/mean_si" in trainer.logged_metrics  # alpha = 0 still logs SI


@pytest.mark.parametrize("alpha", [-2.0, 3.0])
def test_one_step_is_the_regularized_sgd_step_and_logs_per_layer_si(tmp_path, alpha):
    net = tiny_net()
    inputs, labels = tiny_data()
    expected = sgd_step_reference(copy.deepcopy(net), inputs, labels, alpha, LR)
    layer_si = numpy_layer_si(copy.deepcopy(net), inputs, labels)
    plain = sgd_step_reference(copy.deepcopy(net), inputs, labels, 0.0, LR)
    module = Classifier(net, SelectivityCallback(alpha, num_classes=3))
    trainer = fit(module, tmp_path, steps=1)
    got = list(module.net.parameters())
    for p, e in zip(got, expected):
        torch.testing.assert_close(p.detach(), e, rtol=1e-5, atol=1e-6)
    assert any(not torch.allclose(e, p, atol=1e-6) for e, p in zip(expected, plain))  # the term moved the weights
    logged = trainer.logged_metrics
    for name, si in zip(UNIT_LAYERS, layer_si):
        assert float(logged[f"selectivity/si/net.{name}"]) == pytest.approx(si, rel=1e-5)
    assert float(logged["selectivity/mean_si"]) == pytest.approx(sum(layer_si) / 2, rel=1e-5)
    assert float(logged["selectivity/penalty"]) == pytest.approx(-alpha * sum(layer_si) / 2, rel=1e-5)


def test_regularize_outside_fit_is_one_clear_error():
    callback = SelectivityCallback(-1.0, num_classes=3)
    with pytest.raises(SelectivityError, match="outside fit"):
        callback.regularize(torch.tensor(1.0), torch.tensor([0, 1]))


def test_callback_captures_a_named_submodule(tmp_path):
    module = Classifier(tiny_net(), SelectivityCallback(-1.0, num_classes=3, layers=["1"], submodule="net"))
    inputs, labels = tiny_data()
    expected = numpy_layer_si(copy.deepcopy(module.net), inputs, labels)[0]
    trainer = fit(module, tmp_path, steps=1)
    assert float(trainer.logged_metrics["selectivity/si/1"]) == pytest.approx(expected, rel=1e-5)
