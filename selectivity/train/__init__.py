"""The one training loop: every model and dataset, the selectivity regularizer its only extra term."""
from selectivity.train.loop import RunFailed, train_run

__all__ = ["RunFailed", "train_run"]
