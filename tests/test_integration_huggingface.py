"""SelectivityTrainer + SelectivityCallback through transformers.Trainer on CPU."""
import copy

import pytest
import torch
from torch import nn

transformers = pytest.importorskip("transformers")

from selectivity import SelectivityError  # noqa: E402
from selectivity.integrations.huggingface import SelectivityCallback, SelectivityTrainer  # noqa: E402
from tests.framework_reference import (  # noqa: E402
    numpy_layer_si, sgd_step_reference, tiny_data, tiny_net, UNIT_LAYERS)

LR = 0.5


class Wrapped(nn.Module):
    """What a transformers model returns: the loss from `labels`, and the logits."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, labels=None):
        logits = self.net(x)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}


class Rows(torch.utils.data.Dataset):
    def __init__(self):
        self.inputs, self.labels = tiny_data()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"x": self.inputs[index], "labels": self.labels[index]}


def train(model, tmp_path, steps, selectivity=None):
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=len(Rows()), max_steps=steps, learning_rate=LR,
        optim="sgd", lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=0.0, report_to="none",
        logging_steps=1, save_strategy="no", use_cpu=True, seed=0, disable_tqdm=True, dataloader_num_workers=0)
    if selectivity is None:
        trainer = transformers.Trainer(model=model, args=args, train_dataset=Rows())
    else:
        trainer = SelectivityTrainer(model=model, args=args, train_dataset=Rows(), selectivity=selectivity)
    trainer.train()
    return trainer


def test_alpha_zero_trains_bit_identical_weights(tmp_path):
    plain, regularized = Wrapped(tiny_net()), Wrapped(tiny_net())
    train(plain, tmp_path / "plain", steps=3)
    trainer = train(regularized, tmp_path / "regularized", steps=3, selectivity=SelectivityCallback(0.0, 3))
    for a, b in zip(plain.parameters(), regularized.parameters()):
        assert torch.equal(a, b)
    first = trainer.state.log_history[0]
    assert first["selectivity/penalty"] == 0.0 and "selectivity/mean_si" in first


@pytest.mark.parametrize("alpha", [-2.0, 3.0])
def test_one_step_is_the_regularized_sgd_step_and_logs_per_layer_si(tmp_path, alpha):
    net = tiny_net()
    inputs, labels = tiny_data()
    expected = sgd_step_reference(copy.deepcopy(net), inputs, labels, alpha, LR)
    plain = sgd_step_reference(copy.deepcopy(net), inputs, labels, 0.0, LR)
    layer_si = numpy_layer_si(copy.deepcopy(net), inputs, labels)
    model = Wrapped(net)
    trainer = train(model, tmp_path, steps=1, selectivity=SelectivityCallback(alpha, num_classes=3))
    for p, e in zip(model.net.parameters(), expected):  # the batch is shuffled: same sums, other order
        torch.testing.assert_close(p.detach(), e, rtol=1e-5, atol=1e-6)
    assert any(not torch.allclose(e, p, atol=1e-6) for e, p in zip(expected, plain))
    logged = trainer.state.log_history[0]
    for name, si in zip(UNIT_LAYERS, layer_si):
        assert logged[f"selectivity/si/net.{name}"] == pytest.approx(si, rel=1e-5)
    assert logged["selectivity/penalty"] == pytest.approx(-alpha * sum(layer_si) / 2, rel=1e-5)
    assert not any(handle for handle in model.net[1]._forward_hooks)  # hooks removed when training ended


def test_trainer_without_the_callback_is_one_clear_error(tmp_path):
    args = transformers.TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    with pytest.raises(SelectivityError, match="expected a selectivity.integrations.huggingface"):
        SelectivityTrainer(model=Wrapped(tiny_net()), args=args, train_dataset=Rows(), selectivity=0.5)
