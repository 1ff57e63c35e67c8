"""A subset an analysis takes is a seeded class-stratified sample, whatever the file order."""
import numpy as np
import pytest
import torch

from selectivity.data.base import LabelledImages
from selectivity.data.subsets import class_quotas, stratified_subset
from selectivity.errors import SelectivityError
from tests.reference import reference_stratified_indices


def class_ordered_split(sizes=(30, 30, 20, 15, 5)) -> LabelledImages:
    """Images sorted by class as on disk: class 0's first, then class 1's, ... each image distinct."""
    generator = torch.Generator().manual_seed(5)
    labels = torch.cat([torch.full((size,), k) for k, size in enumerate(sizes)])
    images = torch.randint(0, 256, (len(labels), 3, 4, 4), dtype=torch.uint8, generator=generator)
    return LabelledImages(images, labels)


def image_set(split: LabelledImages) -> set:
    return {(bytes(image.flatten().tolist()), int(label)) for image, label in zip(split.images, split.labels)}


def test_each_class_gets_its_share_worked_by_hand():
    split = class_ordered_split()  # 100 images: 30/30/20/15/5
    subset = stratified_subset(split, 20, seed=0)
    # 20 of 100: exact shares 6, 6, 4, 3, 1 (no rounding)
    assert subset.per_class == {0: 6, 1: 6, 2: 4, 3: 3, 4: 1}
    assert np.bincount(subset.split.labels.numpy(), minlength=5).tolist() == [6, 6, 4, 3, 1]
    # 7 of 100: shares 2.1, 2.1, 1.4, 1.05, 0.35 -> floors 2, 2, 1, 1, 0 (6) + 1 to the largest part (1.4)
    assert stratified_subset(split, 7, seed=0).per_class == {0: 2, 1: 2, 2: 2, 3: 1, 4: 0}
    # the first 20 images, as before, were all class 0
    assert set(split.labels[:20].tolist()) == {0}


def test_quotas_tie_to_the_lower_label():
    # 3 of 4 equal classes: 0.75 each, floors 0; the three lowest labels get one
    assert class_quotas({0: 5, 1: 5, 2: 5, 3: 5}, 3) == {0: 1, 1: 1, 2: 1, 3: 0}


@pytest.mark.parametrize("count, seed", [(20, 0), (7, 3), (33, 2**63)])
def test_matches_a_loop_reference(count, seed):
    split = class_ordered_split()
    subset = stratified_subset(split, count, seed)
    expected = reference_stratified_indices(split.images.numpy(), split.labels.numpy(), count, seed)
    assert subset.indices.tolist() == expected.tolist()
    assert torch.equal(subset.split.images, split.images[torch.from_numpy(expected)])
    assert torch.equal(subset.split.labels, split.labels[torch.from_numpy(expected)])


def test_seed_deterministic_and_seed_dependent():
    split = class_ordered_split()
    first, again = stratified_subset(split, 20, seed=1), stratified_subset(split, 20, seed=1)
    assert torch.equal(first.indices, again.indices)
    assert not torch.equal(first.indices, stratified_subset(split, 20, seed=2).indices)


def test_the_same_images_whatever_the_file_order():
    split = class_ordered_split()
    permutation = torch.from_numpy(np.random.default_rng(9).permutation(len(split.labels)))
    shuffled = LabelledImages(split.images[permutation], split.labels[permutation])
    ordered_subset, shuffled_subset = stratified_subset(split, 20, 4), stratified_subset(shuffled, 20, 4)
    assert image_set(ordered_subset.split) == image_set(shuffled_subset.split)
    assert ordered_subset.per_class == shuffled_subset.per_class


def test_the_whole_split_when_asked_for_all_and_the_record():
    split = class_ordered_split()
    whole = stratified_subset(split, 500, seed=0)
    assert whole.indices.tolist() == list(range(100)) and whole.per_class == {0: 30, 1: 30, 2: 20, 3: 15, 4: 5}
    values = dict(stratified_subset(split, 20, seed=7).metric_values("attacks"))
    assert values == {"attacks_subset_seed": 7.0, "attacks_subset_count:0": 6.0, "attacks_subset_count:1": 6.0,
                      "attacks_subset_count:2": 4.0, "attacks_subset_count:3": 3.0, "attacks_subset_count:4": 1.0}
    assert stratified_subset(split, 20, seed=7).description() == \
        "class-stratified, seed 7, per class 0:6 1:6 2:4 3:3 4:1"


@pytest.mark.parametrize("count, seed, message", [
    (0, 0, "subset size 0; expected an integer >= 1"), (2.5, 0, "subset size 2.5"),
    (5, -1, "subset seed -1; expected an integer in"), (5, True, "subset seed True"),
])
def test_bad_settings_are_one_line(count, seed, message):
    with pytest.raises(SelectivityError, match=message):
        stratified_subset(class_ordered_split(), count, seed)


def test_measure_limit_takes_a_stratified_sample():
    from types import SimpleNamespace

    from selectivity.cli.measure_command import select_inputs

    split = class_ordered_split()
    data = SimpleNamespace(test=split, name="ordered", num_classes=5)
    chosen = select_inputs(data, "test", 20)
    expected = reference_stratified_indices(split.images.numpy(), split.labels.numpy(), 20, 0)
    assert torch.equal(chosen.labels, split.labels[torch.from_numpy(expected)])
    assert np.bincount(chosen.labels.numpy()).tolist() == [6, 6, 4, 3, 1]
