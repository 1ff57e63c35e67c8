"""Analysis caches are keyed to the checkpoint they came from; a stale or damaged one is recomputed."""
import numpy as np
import torch

from selectivity.capture import UnitCapture
from selectivity.config import ExperimentConfig
from selectivity.data import load_dataset
from selectivity.data.batches import normalize_images
from selectivity.models import create_model
from selectivity.store import run_path
from selectivity.sweep.analysis_cache import cached_arrays
from selectivity.sweep.layout import SweepRun
from selectivity.sweep.off_axis import layer_activations
from tests.reference import reference_stratified_indices

NUM_IMAGES = 40


class Counting:
    """compute() for cached_arrays that returns `value` and counts its calls."""

    def __init__(self, value: float):
        self.value, self.calls = value, 0

    def __call__(self) -> dict[str, np.ndarray]:
        self.calls += 1
        return {"layer": np.full((2, 3), self.value)}


def test_a_cache_is_used_only_for_the_checkpoint_it_was_computed_from(tmp_path):
    source, cache = tmp_path / "checkpoint.pt", tmp_path / "cache.npz"
    source.write_bytes(b"first model")
    first = Counting(1.0)
    assert cached_arrays(cache, source, first)["layer"][0, 0] == 1.0
    assert cached_arrays(cache, source, first)["layer"][0, 0] == 1.0 and first.calls == 1  # read back
    source.write_bytes(b"other model")  # the run was redone: same size, new content
    second = Counting(2.0)
    assert cached_arrays(cache, source, second)["layer"][0, 0] == 2.0 and second.calls == 1
    cache.write_bytes(cache.read_bytes()[:50])  # truncated
    third = Counting(3.0)
    assert cached_arrays(cache, source, third)["layer"][0, 0] == 3.0 and third.calls == 1
    assert cached_arrays(cache, source, third)["layer"][0, 0] == 3.0 and third.calls == 1  # rewritten whole


def save_model_run(store, data, seed: int) -> tuple[SweepRun, torch.nn.Module]:
    """A run folder whose checkpoint.pt holds a freshly initialised small_cnn (seed `seed`)."""
    config = ExperimentConfig(seed=0, device="cpu")
    torch.manual_seed(seed)
    model = create_model(config.model.name, num_classes=data.num_classes, in_channels=data.image_shape[0]).eval()
    run = SweepRun(config, "0", run_path(store, config))
    run.path.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, run.directory.checkpoint_path)
    return run, model


@torch.no_grad()
def direct_activations(model, config, data) -> dict[str, np.ndarray]:
    """The activations computed here, without the analysis code: one batch through UnitCapture."""
    chosen = reference_stratified_indices(data.test.images.numpy(), data.test.labels.numpy(), NUM_IMAGES, 0)
    with UnitCapture(model, config.evaluation.layers) as capture:
        model(normalize_images(data.test.images[chosen], data.mean, data.std))
        return {name: units.double().numpy() for name, units in capture.activations.items()}


def test_off_axis_activations_of_a_redone_run_come_from_its_new_checkpoint(tmp_path):
    data = load_dataset("digits")
    run, old_model = save_model_run(tmp_path, data, seed=1)
    layer_activations(run, data, NUM_IMAGES)  # caches the old model's activations
    run, new_model = save_model_run(tmp_path, data, seed=2)  # redone: a new checkpoint
    expected = direct_activations(new_model, run.config, data)
    assert not np.allclose(expected["relu1"], direct_activations(old_model, run.config, data)["relu1"])
    found = layer_activations(run, data, NUM_IMAGES)
    assert sorted(found) == sorted(expected)
    for name in expected:
        np.testing.assert_allclose(found[name], expected[name], rtol=1e-6, atol=1e-9)
    cache = next(run.path.glob("off_axis_activations_*.npz"))
    cache.write_bytes(cache.read_bytes()[:100])  # truncated by a crash: recomputed, not a traceback
    np.testing.assert_allclose(layer_activations(run, data, NUM_IMAGES)["relu1"], expected["relu1"], rtol=1e-6)
