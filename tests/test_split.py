import pytest
import torch

from ablate.data.split import LABEL_BUDGETS, make_split
from ablate.errors import ConfigError, DataError

RAF = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
RAF_TRAIN = [1290, 281, 717, 4772, 1982, 705, 2524]


def raf_like_labels() -> torch.Tensor:
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(RAF_TRAIN)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))]


@pytest.mark.parametrize(
    "budget,fear,other", [(100, 10, 15), (400, 40, 60), (1000, 100, 150), (2000, 200, 300), (4000, 250, 625)]
)
def test_budget_counts_follow_the_seeds_table(budget, fear, other):
    labels = raf_like_labels()
    split = make_split(labels, RAF, labels=budget, split_seed=0)
    counts = torch.bincount(labels[split.labeled], minlength=7).tolist()
    assert counts == [other, fear, other, other, other, other, other]
    assert sum(counts) == (budget if budget != 4000 else 250 + 6 * 625)


def test_budget_table_is_the_protocol():
    assert LABEL_BUDGETS == {100: (10, 15), 400: (40, 60), 1000: (100, 150), 2000: (200, 300), 4000: (250, 625)}


def test_labeled_and_unlabeled_are_disjoint_and_cover_train():
    labels = raf_like_labels()
    split = make_split(labels, RAF, labels=400, split_seed=3, val_per_class=5)
    everything = torch.cat([split.labeled, split.unlabeled, split.validation])
    assert len(everything) == len(labels)
    assert torch.equal(torch.sort(everything).values, torch.arange(len(labels)))
    assert torch.bincount(labels[split.validation], minlength=7).tolist() == [5] * 7


def test_split_seed_makes_it_repeatable_and_different():
    labels = raf_like_labels()
    a = make_split(labels, RAF, labels=100, split_seed=7)
    b = make_split(labels, RAF, labels=100, split_seed=7)
    c = make_split(labels, RAF, labels=100, split_seed=8)
    assert torch.equal(a.labeled, b.labeled)
    assert not torch.equal(a.labeled, c.labeled)


def test_split_ignores_the_global_torch_seed():
    labels = raf_like_labels()
    torch.manual_seed(0)
    a = make_split(labels, RAF, labels=100, split_seed=7)
    torch.manual_seed(123)
    b = make_split(labels, RAF, labels=100, split_seed=7)
    assert torch.equal(a.labeled, b.labeled)


def test_per_class_and_fraction():
    labels = torch.tensor([0] * 10 + [1] * 20 + [2] * 40)
    names = ("a", "b", "c")
    split = make_split(labels, names, labels_per_class=3)
    assert torch.bincount(labels[split.labeled]).tolist() == [3, 3, 3]
    split = make_split(labels, names, label_fraction=0.25)
    assert torch.bincount(labels[split.labeled]).tolist() == [2, 5, 10]  # round(2.5) = 2: banker's rounding


def test_too_few_images_names_the_class():
    labels = torch.tensor([0] * 10 + [1] * 2)
    with pytest.raises(DataError, match=r"class 'b' has 2 training images; the split needs 3"):
        make_split(labels, ("a", "b"), labels_per_class=3)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"labels": 123}, r"data.labels: 123 is not a budget.*\[100, 400, 1000, 2000, 4000\]"),
        ({}, r"exactly one of labels, labels_per_class, label_fraction"),
        ({"labels": 100, "label_fraction": 0.1}, r"exactly one"),
        ({"label_fraction": 1.5}, r"label_fraction: must be in \(0, 1\]"),
        ({"labels_per_class": 0}, r"labels_per_class: must be an integer >= 1"),
    ],
)
def test_bad_requests(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_split(raf_like_labels(), RAF, **kwargs)


def test_budget_needs_seven_classes_with_fear():
    with pytest.raises(ConfigError, match="7 classes including 'fear'"):
        make_split(torch.tensor([0, 1] * 50), ("a", "b"), labels=100)
