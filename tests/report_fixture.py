"""A synthetic sweep tidy table whose headline numbers can be worked out by hand.

5 alphas x 3 seeds x 4 layers x 16 units. Accuracy = ACCURACY[alpha] + SEED_OFFSET[seed]
(so each alpha's mean is ACCURACY[alpha], sd 0.01); network mean SI = MEAN_SI[alpha] for
every seed. Unit SI in layer l: MEAN_SI * LAYER_FACTOR[l] * (0.5 + u / 15), whose mean over
units and layers is MEAN_SI. At alpha = -10 the first two units of each layer are dead.
"""
import pandas as pd

ACCURACY = {-10.0: 0.85, -1.0: 0.89, 0.0: 0.90, 1.0: 0.80, 10.0: 0.50}
MEAN_SI = {-10.0: 0.04, -1.0: 0.16, 0.0: 0.40, 1.0: 0.50, 10.0: 0.45}
SEED_OFFSET = {0: -0.01, 1: 0.0, 2: 0.01}
LAYER_FACTOR = [0.7, 0.9, 1.1, 1.3]
UNITS_PER_LAYER = 16
FINAL_EPOCH = 3


def _row(run_id, alpha, label, seed, layer, layer_index, unit, metric, value, epoch=FINAL_EPOCH):
    return {"run_id": run_id, "model": "resnet20", "dataset": "cifar10", "alpha": alpha,
            "alpha_label": label, "seed": seed, "epoch": epoch, "layer": layer,
            "layer_index": layer_index, "unit": unit, "metric": metric, "value": value}


def run_rows(alpha: float, seed: int, label: str | None = None, with_cca: bool = True) -> list[dict]:
    """Every row of one run (network, layer and unit rows, plus a stale earlier epoch)."""
    label = label or f"{alpha:g}"
    run_id = f"hash{label}/seed_{seed}"
    dead_units = 2 if alpha == -10 else 0
    accuracy = ACCURACY[alpha] + SEED_OFFSET[seed]
    rows = [_row(run_id, alpha, label, seed, "network", -1, -1, "test_accuracy", 0.1, epoch=0)]
    network = {"test_accuracy": accuracy, "test_loss": 1 - accuracy, "mean_si": MEAN_SI[alpha],
               "dead_fraction": dead_units / UNITS_PER_LAYER, "train_loss": 0.2, "train_batch_si": 0.3}
    rows += [_row(run_id, alpha, label, seed, "network", -1, -1, m, v) for m, v in network.items()]
    for layer_index, factor in enumerate(LAYER_FACTOR):
        layer = f"layer{layer_index + 1}.relu"
        si = [0.0 if unit < dead_units else MEAN_SI[alpha] * factor * (0.5 + unit / 15)
              for unit in range(UNITS_PER_LAYER)]
        rows += [_row(run_id, alpha, label, seed, layer, layer_index, -1, "mean_si", sum(si) / len(si)),
                 _row(run_id, alpha, label, seed, layer, layer_index, -1, "dead_fraction",
                      dead_units / UNITS_PER_LAYER),
                 _row(run_id, alpha, label, seed, layer, layer_index, -1, "num_units", UNITS_PER_LAYER)]
        if with_cca and alpha != 0:
            ratio = 1 + 0.05 * abs(alpha) * (layer_index + 1) + 0.02 * seed
            rows.append(_row(run_id, alpha, label, seed, layer, layer_index, -1, "pwcca_ratio", ratio))
        for unit, value in enumerate(si):
            rows += [_row(run_id, alpha, label, seed, layer, layer_index, unit, "si", value),
                     _row(run_id, alpha, label, seed, layer, layer_index, unit, "dead",
                          float(unit < dead_units))]
    return rows


def sweep_table(alphas=tuple(ACCURACY), seeds=(0, 1, 2), with_cca: bool = True) -> pd.DataFrame:
    """The full synthetic sweep (or a part of it)."""
    rows = [row for alpha in alphas for seed in seeds for row in run_rows(alpha, seed, with_cca=with_cca)]
    return pd.DataFrame(rows)
