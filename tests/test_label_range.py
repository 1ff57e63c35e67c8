"""Every path that indexes class statistics by label refuses a label of K or below 0 in one line.

The boundary itself is tested: with K = 3, label 3 is the first one out of range, and a
check written `> K` instead of `>= K` lets it through (into a one_hot or index_add that
fails with a torch error, or silently into a wrong class).
"""
import pytest
import torch

from selectivity.errors import SelectivityError
from selectivity.metrics.class_means import class_conditional_means
from selectivity.metrics.shuffles import ShuffledAccumulator, ShuffleSettings
from selectivity.metrics.streaming import SelectivityAccumulator
from selectivity.metrics.unit_tables import UnitTables

CLASSES = 3
OUT_OF_RANGE = [CLASSES, -1]


def refused_in_one_line(call) -> str:
    with pytest.raises(SelectivityError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and "expected class indices 0..2" in message
    return message


def test_the_streaming_accumulator_takes_every_label_from_0_to_k_minus_1():
    accumulator = SelectivityAccumulator(CLASSES)
    accumulator.update({"x": torch.tensor([[1.0], [2.0], [4.0]])}, torch.tensor([0, 1, 2]))
    assert accumulator.result().counts.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("bad", OUT_OF_RANGE)
def test_the_streaming_accumulator_refuses_label_k_and_negative_labels(bad):
    accumulator = SelectivityAccumulator(CLASSES)
    message = refused_in_one_line(lambda: accumulator.update({"x": torch.ones(2, 1)}, torch.tensor([0, bad])))
    assert "1 labels are outside [0, 3)" in message


@pytest.mark.parametrize("bad", OUT_OF_RANGE)
def test_a_bad_label_in_a_later_batch_is_refused_by_result(bad):
    accumulator = SelectivityAccumulator(CLASSES)
    accumulator.update({"x": torch.ones(2, 1)}, torch.tensor([0, 2]))  # the first batch is checked at once
    accumulator.update({"x": torch.ones(2, 1)}, torch.tensor([bad, 1]))  # later ones without a host sync
    refused_in_one_line(accumulator.result)


@pytest.mark.parametrize("bad", OUT_OF_RANGE)
def test_class_conditional_means_refuse_label_k_and_negative_labels(bad):
    refused_in_one_line(lambda: class_conditional_means(torch.ones(2, 1), torch.tensor([0, bad]), CLASSES))


@pytest.mark.parametrize("bad", OUT_OF_RANGE)
def test_the_shuffled_path_refuses_label_k_and_negative_labels(bad):
    labels = torch.tensor([0, 1, 2, bad])
    refused_in_one_line(lambda: ShuffledAccumulator(labels, CLASSES, ShuffleSettings(shuffles=2, bins=3)))
    refused_in_one_line(lambda: UnitTables(CLASSES, signed_any=False, shuffles=ShuffleSettings(shuffles=2, bins=3),
                                           labels=labels))


def test_the_shuffled_path_takes_labels_up_to_k_minus_1():
    accumulator = ShuffledAccumulator(torch.tensor([0, 1, 2, 2]), CLASSES, ShuffleSettings(shuffles=2, bins=3))
    accumulator.update({"x": torch.tensor([[1.0], [2.0], [3.0], [4.0]])}, torch.arange(4))
    assert accumulator.result().labelings.shape == (3, 4)
