"""The selectivity regularizer as a PyTorch Lightning callback (extra `lightning`).

A Lightning `Callback` cannot change the loss a `training_step` returns, so the work is
split the way Lightning documents for callbacks a module depends on: the module creates the
callback and returns it from `LightningModule.configure_callbacks()`, the callback installs
the capture hooks when fitting starts (`setup`) and removes them when it ends (`teardown`),
and `training_step` adds the term with one call::

    class Classifier(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = make_net()
            self.selectivity = SelectivityCallback(alpha=-1.0, num_classes=10)

        def configure_callbacks(self):
            return [self.selectivity]

        def forward(self, images):
            return self.net(images)

        def training_step(self, batch, batch_index):
            images, labels = batch
            loss = cross_entropy(self(images), labels)
            return self.selectivity.regularize(loss, labels)  # CE - alpha * mu_SI

`regularize` logs `selectivity/mean_si`, `selectivity/penalty` and `selectivity/si/<layer>`
through `LightningModule.log`, so they reach whatever logger the Trainer has. The hooks
record the forward passes of the module itself (call `self(images)`, i.e. `forward`), or of
the submodule named by `submodule`. With alpha = 0 the loss is returned unchanged.
"""
import lightning

from selectivity.errors import SelectivityError
from selectivity.integrations.attached import AttachedRegularizer
from selectivity.metrics.selectivity_index import EPS


class SelectivityCallback(lightning.Callback):
    """Captures unit activations while fitting; `regularize(loss, labels)` adds -alpha * mu_SI.

    Args:
        alpha: the knob (< 0 lowers selectivity, > 0 raises it, 0 = plain training).
        num_classes: K.
        layers: unit layers, named inside the captured module ("relu", "blocks" or names).
        submodule: attribute path of the module whose forward pass to capture ("" = the LightningModule).
        eps: the SI denominator's epsilon.
    """

    def __init__(self, alpha: float, num_classes: int, layers: str | list[str] = "relu", submodule: str = "",
                 eps: float = EPS):
        self._term = AttachedRegularizer(alpha, num_classes, layers, eps)
        self.submodule = submodule
        self._module: lightning.LightningModule | None = None

    @property
    def alpha(self) -> float:
        return self._term.regularizer.alpha

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        target = pl_module.get_submodule(self.submodule) if self.submodule else pl_module
        self._term.attach(target)
        self._module = pl_module

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit":
            self._term.detach()
            self._module = None

    def regularize(self, loss, labels):
        """loss - alpha * mu_SI of the forward pass just run, logging the SI of each layer."""
        if self._module is None:
            raise SelectivityError("SelectivityCallback.regularize() outside fit; expected the callback in the "
                                   "Trainer (return it from configure_callbacks()) and a call from training_step")
        penalty, logged = self._term.term(labels)
        self._module.log_dict(logged, on_step=True, on_epoch=False, batch_size=labels.shape[0])
        return loss + penalty if self._term.regularizer.active else loss
