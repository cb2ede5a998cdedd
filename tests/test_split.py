"""The split protocol: budget counts, the validation hold-out (default and every RAF-DB budget), the one-budget
rule, and the checks a driver runs before training (check_split)."""

import pytest
import torch

from ablate.config.budget import DEFAULT_VAL_PER_CLASS, LABEL_BUDGETS, set_budget
from ablate.data.base import FaceSet
from ablate.data.split import check_split, make_split, resolve_split, split_faces
from ablate.errors import ConfigError, DataError

RAF = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
RAF_TRAIN = [1290, 281, 717, 4772, 1982, 705, 2524]
RAF_TEST = [329, 74, 160, 1185, 478, 162, 680]
BUDGETS = sorted(LABEL_BUDGETS)


def raf_like_labels() -> torch.Tensor:
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(RAF_TRAIN)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))]


def faces_with_counts(train: list[int], test: list[int] | None, names=RAF, splits=("train", "test")) -> FaceSet:
    """A FaceSet with these class counts and 1x1 images: the split only reads labels, so nothing is rendered.
    Train and test faces are interleaved so that an index mix-up between them cannot go unnoticed."""
    labels = [torch.full((n,), c) for c, n in enumerate(train)]
    split = [torch.zeros(n, dtype=torch.int64) for n in train]
    for c, n in enumerate(test or []):
        labels.append(torch.full((n,), c))
        split.append(torch.ones(n, dtype=torch.int64))
    labels, split = torch.cat(labels), torch.cat(split)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(2))
    return FaceSet(
        images=torch.zeros(len(labels), 3, 1, 1, dtype=torch.uint8),
        labels=labels[order],
        split=split[order],
        split_names=splits,
        class_names=names,
    )


@pytest.fixture(scope="module")
def rafdb_faces() -> FaceSet:
    return faces_with_counts(RAF_TRAIN, RAF_TEST)


# ---- budgets -------------------------------------------------------------------------------------------------


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


def test_labeled_in_unlabeled_puts_the_labeled_images_in_the_unlabeled_pool_too():
    """USB's include_lb_to_ulb: 12,271 RAF-like training images, 400 labeled, 35 validation: the pool is
    12,271 - 35 = 12,236 images, the labeled ones among them; the labeled and validation sets do not move."""
    labels = raf_like_labels()
    apart = make_split(labels, RAF, labels=400, split_seed=3, val_per_class=5)
    pooled = make_split(labels, RAF, labels=400, split_seed=3, val_per_class=5, labeled_in_unlabeled=True)
    assert torch.equal(pooled.labeled, apart.labeled) and torch.equal(pooled.validation, apart.validation)
    assert len(apart.unlabeled) == 12271 - 400 - 35 and len(pooled.unlabeled) == 12271 - 35
    assert torch.equal(pooled.unlabeled, torch.sort(torch.cat([apart.labeled, apart.unlabeled])).values)
    assert not torch.isin(pooled.validation, pooled.unlabeled).any()


def test_split_seed_makes_it_repeatable_and_different():
    labels = raf_like_labels()
    a = make_split(labels, RAF, labels=100, split_seed=7)
    b = make_split(labels, RAF, labels=100, split_seed=7)
    c = make_split(labels, RAF, labels=100, split_seed=8)
    assert torch.equal(a.labeled, b.labeled) and torch.equal(a.validation, b.validation)
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
    split = make_split(labels, names, labels_per_class=3, val_per_class=0)
    assert torch.bincount(labels[split.labeled]).tolist() == [3, 3, 3]
    split = make_split(labels, names, label_fraction=0.25, val_per_class=0)
    assert torch.bincount(labels[split.labeled]).tolist() == [2, 5, 10]  # round(2.5) = 2: banker's rounding


# ---- the validation split (issue 11) -------------------------------------------------------------------------


def test_validation_is_on_by_default_with_20_per_class():
    assert DEFAULT_VAL_PER_CLASS == 20
    assert resolve_split({})["val_per_class"] == 20
    labels = raf_like_labels()
    split = make_split(labels, RAF, labels=100)
    assert torch.bincount(labels[split.validation], minlength=7).tolist() == [20] * 7


@pytest.mark.parametrize("budget", BUDGETS)
def test_default_validation_fits_every_rafdb_budget_and_is_disjoint(rafdb_faces, budget):
    """The default hold-out at every budget, through the path a trial takes (FaceSet indices, train and test)."""
    section = resolve_split({"labels": budget, "split_seed": 5})
    check_split(rafdb_faces, section, "rafdb-counts")  # raises if any class is too small
    parts = split_faces(rafdb_faces, section)
    train, test = rafdb_faces.indices("train"), rafdb_faces.indices("test")
    sets = {
        "labeled": set(parts.labeled.tolist()),
        "unlabeled": set(parts.unlabeled.tolist()),
        "validation": set(parts.validation.tolist()),
        "test": set(test.tolist()),
    }
    assert not sets["validation"] & sets["labeled"]
    assert not sets["validation"] & sets["unlabeled"]
    assert not sets["validation"] & sets["test"]
    assert not sets["labeled"] & sets["unlabeled"]
    assert not (sets["labeled"] | sets["unlabeled"]) & sets["test"]
    covered = torch.sort(torch.cat([parts.labeled, parts.unlabeled, parts.validation])).values
    assert torch.equal(covered, train)  # exactly the training faces, each once
    labels = rafdb_faces.labels
    assert torch.bincount(labels[parts.validation], minlength=7).tolist() == [20] * 7
    fear, other = LABEL_BUDGETS[budget]
    assert torch.bincount(labels[parts.labeled], minlength=7).tolist() == [other, fear] + [other] * 5


def test_a_source_too_small_for_the_default_names_class_numbers_and_fix():
    # synthfer at scale 0.05 has 14 fear images: 10 labeled + 20 validation do not fit.
    counts = [round(n * 0.05) for n in RAF_TRAIN]
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    with pytest.raises(
        DataError,
        match=r"class 'fear' has 14 training images; the split needs 10 labeled \(data.labels=100\) \+ 20 validation "
        r"\(data.val_per_class\) = 30; set data.val_per_class to at most 4, or ask for fewer labels",
    ):
        make_split(labels, RAF, labels=100)


def test_too_few_images_for_the_labels_alone_names_the_class():
    labels = torch.tensor([0] * 10 + [1] * 2)
    with pytest.raises(
        DataError, match=r"class 'b' has 2 training images; the split needs 3 labeled .*; ask for fewer"
    ):
        make_split(labels, ("a", "b"), labels_per_class=3, val_per_class=0)


# ---- the one-budget rule -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given,message",
    [
        ({"labels": 123}, r"data.labels: 123 is not allowed; allowed: 100, 400, 1000, 2000, 4000 \(labels: .*"),
        ({"labels": None}, r"exactly one of labels, labels_per_class, label_fraction; got none"),
        ({"labels": 100, "label_fraction": 0.1}, r"exactly one.*got labels=100, label_fraction=0.1"),
        ({"label_fraction": 1.5}, r"data.label_fraction: 1.5 is out of range; allowed: a float in \(0, 1\]"),
        ({"labels_per_class": 0}, r"data.labels_per_class: 0 is out of range; allowed: a int in \[1, inf\)"),
        ({"val_per_class": -1}, r"data.val_per_class: -1 is out of range"),
        ({"labels_per_class": 2.5}, r"data.labels_per_class: 2.5 is a float"),
        ({"budget": 100}, r"data: unknown split key 'budget'; allowed: labels, labels_per_class"),
    ],
)
def test_bad_requests(given, message):
    with pytest.raises(ConfigError, match=message):
        resolve_split(given)
    with pytest.raises(ConfigError, match=message):  # make_split checks its keys the same way
        make_split(raf_like_labels(), RAF, **given)


def test_per_class_or_fraction_replaces_the_default_budget():
    assert resolve_split({"labels_per_class": 5})["labels"] is None
    assert resolve_split({"label_fraction": 0.1})["labels"] is None
    assert resolve_split({})["labels"] == 100


def test_set_budget_clears_the_other_budget_keys():
    section = resolve_split({"labels": 400})
    set_budget(section, "labels_per_class", 7)
    assert (section["labels"], section["labels_per_class"], section["label_fraction"]) == (None, 7, None)
    assert resolve_split(section)["labels_per_class"] == 7  # one budget: resolves
    set_budget(section, "labels", 1000)
    assert (section["labels"], section["labels_per_class"]) == (1000, None)
    with pytest.raises(ValueError, match="not a budget key"):
        set_budget(section, "split_seed", 3)


def test_a_null_budget_clears_nothing_in_the_section_and_in_a_composed_trial():
    # One rule for both setters: null only says that this way of asking is not used.
    from ablate.config.compose import set_sampled

    section = {"labels": None, "labels_per_class": 7, "label_fraction": None}
    set_budget(section, "labels", None)
    assert section == {"labels": None, "labels_per_class": 7, "label_fraction": None}
    config = {"data": {"labels": None, "labels_per_class": 7, "label_fraction": None}}
    set_sampled(config, "data.label_fraction", None)
    assert config["data"] == section
    set_sampled(config, "data.label_fraction", 0.5)
    assert config["data"] == {"labels": None, "labels_per_class": None, "label_fraction": 0.5}


def test_budget_needs_seven_classes_with_fear():
    with pytest.raises(DataError, match=r"7 classes including 'fear'.*use data.labels_per_class"):
        make_split(torch.tensor([0, 1] * 50), ("a", "b"), labels=100)


# ---- check_split: data faults found before training (issue 12) -----------------------------------------------


def test_check_split_accepts_data_that_fits(rafdb_faces):
    check_split(rafdb_faces, resolve_split({"labels": 4000}), "/data/raf")


@pytest.mark.parametrize("missing", ["train", "test"])
def test_check_split_names_a_missing_split(missing):
    faces = faces_with_counts([30] * 7, [5] * 7, splits=("train", "validation") if missing == "test" else ("x", "test"))
    with pytest.raises(DataError, match=rf"^/data/raf: the data has no '{missing}' split \(it has: .*\); training"):
        check_split(faces, resolve_split({"labels_per_class": 1}), "/data/raf")


def test_check_split_names_a_class_with_no_training_image():
    faces = faces_with_counts([30, 0, 30, 30, 30, 30, 30], [5] * 7)
    with pytest.raises(DataError, match=r"^/data/raf: class 'fear' has 0 training images"):
        check_split(faces, resolve_split({"labels_per_class": 1, "val_per_class": 0}), "/data/raf")


def test_check_split_names_a_class_below_its_budget_and_is_one_line():
    faces = faces_with_counts([300, 25, 300, 300, 300, 300, 300], [5] * 7)
    check_split(faces, resolve_split({"labels": 100, "val_per_class": 15}), "/data/raf")  # 10 + 15 = 25 fits
    with pytest.raises(DataError) as err:
        check_split(faces, resolve_split({"labels": 400}), "/data/raf")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("/data/raf: class 'fear' has 25 training images; the split needs 40 labeled")
    assert "+ 20 validation (data.val_per_class) = 60; ask for fewer labels" in message
