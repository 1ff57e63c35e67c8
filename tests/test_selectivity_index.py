import numpy as np
import pytest
import torch

from selectivity import SelectivityError, class_conditional_means, selectivity_index
from tests.reference import reference_selectivity


@pytest.mark.parametrize("num_classes,num_units,absent", [(2, 3, ()), (10, 17, (3, 7)), (5, 1, (0,)), (200, 8, ())])
def test_si_matches_numpy_loop(num_classes, num_units, absent):
    rng = np.random.default_rng(num_classes * 100 + num_units)
    labels = rng.integers(0, num_classes, size=4 * num_classes + 50)
    for k in absent:
        labels[labels == k] = (k + 1) % num_classes
    activations = np.maximum(rng.normal(size=(len(labels), num_units)), 0) * rng.uniform(0.1, 3, num_units)
    means, counts = class_conditional_means(torch.tensor(activations), torch.tensor(labels), num_classes)
    got = selectivity_index(means, counts).numpy()
    np.testing.assert_allclose(got, reference_selectivity(activations, labels, num_classes), rtol=1e-10, atol=1e-12)


def test_class_means_are_means_not_sums():
    activations = torch.tensor([[1.0], [3.0], [10.0]])
    means, counts = class_conditional_means(activations, torch.tensor([0, 0, 1]), 3)
    assert means.squeeze(1).tolist() == [2.0, 10.0, 0.0]
    assert counts.tolist() == [2.0, 1.0, 0.0]


def test_hand_cases():
    # unit 0 answers only class 1 -> 1; unit 1 is flat -> 0; unit 2 is dead -> 0
    means = torch.tensor([[0.0, 2.0, 0.0], [4.0, 2.0, 0.0], [0.0, 2.0, 0.0]], dtype=torch.float64)
    si = selectivity_index(means)
    assert si[0].item() == pytest.approx(1.0, abs=1e-6)
    assert si[1].item() == pytest.approx(0.0, abs=1e-12)
    assert si[2].item() == 0.0
    # hand-worked: means (3, 1, 1) -> (3 - 1) / (3 + 1) = 0.5
    assert selectivity_index(torch.tensor([[3.0], [1.0], [1.0]], dtype=torch.float64)).item() == pytest.approx(0.5, rel=1e-6)


def test_absent_classes_are_left_out_of_mu_rest():
    means = torch.tensor([[3.0], [1.0], [0.0]], dtype=torch.float64)
    with_absent = selectivity_index(means, counts=torch.tensor([5.0, 5.0, 0.0]))
    assert with_absent.item() == pytest.approx((3 - 1) / (3 + 1), rel=1e-6)
    assert selectivity_index(means).item() == pytest.approx((3 - 0.5) / (3 + 0.5), rel=1e-6)


def test_fewer_than_two_classes_gives_nan():
    means = torch.tensor([[3.0, 1.0], [0.0, 0.0]])
    assert torch.isnan(selectivity_index(means, torch.tensor([4.0, 0.0]))).all()


def test_gradcheck_float64():
    torch.manual_seed(0)
    activations = torch.rand(40, 6, dtype=torch.float64, requires_grad=True)
    labels = torch.arange(40) % 4

    def mean_si(acts):
        means, counts = class_conditional_means(acts, labels, 5)  # class 4 absent
        return selectivity_index(means, counts)

    assert torch.autograd.gradcheck(mean_si, (activations,))


def test_bad_labels_and_shapes_are_one_line_errors():
    with pytest.raises(SelectivityError, match=r"label 3 is outside \[0, 3\)") as error:
        class_conditional_means(torch.ones(2, 4), torch.tensor([0, 3]), 3)
    assert "\n" not in str(error.value)
    with pytest.raises(SelectivityError, match="label -1"):
        class_conditional_means(torch.ones(2, 4), torch.tensor([-1, 0]), 3)
    with pytest.raises(SelectivityError, match="do not match"):
        class_conditional_means(torch.ones(3, 4), torch.tensor([0, 1]), 3)
    with pytest.raises(SelectivityError, match="integer class indices"):
        class_conditional_means(torch.ones(2, 4), torch.tensor([0.0, 1.0]), 3)


@pytest.mark.parametrize("num_classes", [0, -2, 2.0, True])
def test_a_class_count_that_is_not_a_positive_integer_is_refused(num_classes):
    with pytest.raises(SelectivityError, match=r"num_classes = .* is invalid; expected an integer >= 1"):
        class_conditional_means(torch.ones(2, 4), torch.tensor([0, 0]), num_classes)


def test_a_numpy_integer_class_count_is_accepted():
    means, counts = class_conditional_means(torch.tensor([[1.0], [3.0]]), torch.tensor([0, 1]), np.int64(2))
    assert means.flatten().tolist() == [1.0, 3.0] and counts.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("means, counts", [
    (torch.tensor([1.0, 2.0, 3.0]), None),  # [U] alone: which axis are the classes?
    (torch.ones(2, 3, 4), None),
    (torch.ones(3, 5), torch.tensor([1.0, 1.0])),  # counts of 2 classes for 3
])
def test_means_and_counts_of_the_wrong_shape_are_refused(means, counts):
    with pytest.raises(SelectivityError, match=r"do not fit; expected means \[K, U\]"):
        selectivity_index(means, counts)
