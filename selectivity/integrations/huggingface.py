"""The selectivity regularizer in the Hugging Face `transformers.Trainer` (extra `hf`).

A `TrainerCallback` sees events but cannot change the loss, and logs it adds in `on_log`
arrive after the reporting callbacks (TensorBoard, W&B, ...) have written theirs. So:

- `SelectivityCallback` installs the capture hooks on the model when training begins and
  removes them when it ends, and keeps the per-layer SI of the steps since the last log;
- `SelectivityTrainer` (a `Trainer` subclass, the route the transformers docs give for a
  custom loss) adds the term in `compute_loss` and merges the averaged SI into `log()`,
  so every reporting integration and `state.log_history` get it::

    trainer = SelectivityTrainer(model=model, args=args, train_dataset=train,
                                 selectivity=SelectivityCallback(alpha=-1.0, num_classes=10))
    trainer.train()

The model computes its own loss from `labels` (any `...ForSequenceClassification` or
`...ForImageClassification` does); the term is added to that loss, so with alpha = 0 the loss
is the model's own. Logged keys: `selectivity/mean_si`, `selectivity/penalty`,
`selectivity/si/<layer>` (means over the steps since the previous log).
"""
import transformers

from selectivity.errors import SelectivityError
from selectivity.integrations.attached import AttachedRegularizer
from selectivity.metrics.selectivity_index import EPS


class SelectivityCallback(transformers.TrainerCallback):
    """Capture hooks for the length of `train()`, and the SI values waiting to be logged.

    Args:
        alpha: the knob (< 0 lowers selectivity, > 0 raises it, 0 = plain training).
        num_classes: K.
        layers: unit layers of the model ("relu", "blocks" or module names).
        eps: the SI denominator's epsilon.
    """

    def __init__(self, alpha: float, num_classes: int, layers: str | list[str] = "relu", eps: float = EPS):
        self._term = AttachedRegularizer(alpha, num_classes, layers, eps)
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    @property
    def alpha(self) -> float:
        return self._term.regularizer.alpha

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._term.attach(model)

    def on_train_end(self, args, state, control, **kwargs):
        self._term.detach()

    def regularize(self, loss, labels):
        """loss - alpha * mu_SI of the forward pass just run; its SI is kept for the next log."""
        penalty, logged = self._term.term(labels)
        for key, value in logged.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
            self._counts[key] = self._counts.get(key, 0) + 1
        return loss + penalty if self._term.regularizer.active else loss

    def pop_logs(self) -> dict[str, float]:
        """Means of the values kept since the last call, then forgotten."""
        means = {key: total / self._counts[key] for key, total in self._sums.items()}
        self._sums, self._counts = {}, {}
        return means


class SelectivityTrainer(transformers.Trainer):
    """A `Trainer` whose training loss is the model's loss - alpha * mu_SI.

    Args:
        selectivity: the SelectivityCallback holding alpha, K and the layers; added to the callbacks.
        Everything else as for `transformers.Trainer`.
    """

    def __init__(self, *args, selectivity: SelectivityCallback, **kwargs):
        if not isinstance(selectivity, SelectivityCallback):
            raise SelectivityError(f"selectivity is a {type(selectivity).__name__}; expected a "
                                   "selectivity.integrations.huggingface.SelectivityCallback")
        if kwargs.get("compute_loss_func") is not None:
            raise SelectivityError("SelectivityTrainer adds its term to the model's own loss; expected no "
                                   "compute_loss_func")
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), selectivity]
        super().__init__(*args, **kwargs)
        self.selectivity = selectivity

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.get("labels")
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if model.training:  # evaluation passes report the model's loss alone
            if labels is None:
                raise SelectivityError("the batch has no 'labels'; the selectivity term needs the class labels")
            loss = self.selectivity.regularize(loss, labels)
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs:  # a training log: add the SI of the steps it covers
            logs.update(self.selectivity.pop_logs())
        super().log(logs, *args, **kwargs)
