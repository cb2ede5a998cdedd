"""The data section of a config and the sources' declared options (issue 13): one function resolves and checks the
whole section, every source declares its options once as Params, and every default reaches the flat columns."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from ablate.config.params import Param, flatten
from ablate.data import DATA_PARAMS, DATASETS, register_dataset, resolve_data_section, source_label, source_options
from ablate.errors import ConfigError


def test_defaults_fill_every_key_and_every_option():
    section = resolve_data_section(None, None)
    assert list(section) == list(DATA_PARAMS)
    assert section == {
        "name": "synthfer",
        "path": None,
        "options": {"seed": 0, "image_size": 64, "scale": 1.0, "channel_order": "rgb"},
        "labels": 100,
        "labels_per_class": None,
        "label_fraction": None,
        "split_seed": 0,
        "labeled_in_unlabeled": False,
        "val_per_class": 20,
    }


def test_synthfer_options_reach_the_results_columns():
    flat = flatten({"data": resolve_data_section({"options": {"scale": 0.1}}, None)})
    assert flat["data.options.seed"] == 0
    assert flat["data.options.image_size"] == 64
    assert flat["data.options.scale"] == 0.1
    assert flat["data.val_per_class"] == 20


def test_a_given_option_keeps_its_value_and_ints_pass_for_floats():
    section = resolve_data_section({"options": {"scale": 1, "image_size": 32, "seed": 4}}, None)
    assert section["options"] == {"seed": 4, "image_size": 32, "scale": 1.0, "channel_order": "rgb"}
    assert isinstance(section["options"]["scale"], float)


def test_path_is_made_absolute_against_base_dir_or_cwd(tmp_path, monkeypatch):
    given = {"name": "folder", "path": "faces/raf"}
    assert resolve_data_section(given, tmp_path)["path"] == str(tmp_path / "faces/raf")
    monkeypatch.chdir(tmp_path)
    assert resolve_data_section(given, None)["path"] == str(tmp_path / "faces/raf")
    assert resolve_data_section({"name": "rafdb", "path": "/abs/raf"}, tmp_path)["path"] == "/abs/raf"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_data_section({"name": "rafdb", "path": "~/raf"}, None)["path"] == str(tmp_path / "raf")


def test_file_source_options_are_filled():
    section = resolve_data_section({"name": "folder", "path": "/x", "options": {"image_size": 48}}, None)
    assert section["options"] == {
        "image_size": 48,
        "skip_corrupt": False,
        "cache_dir": None,
        "use_cache": True,
        "test_fraction": 0.2,
        "test_seed": 0,
        "channel_order": "rgb",
    }


@pytest.mark.parametrize(
    "given,message",
    [
        ("synthfer", r"^data: expected a mapping with keys name, path, options"),
        ({"name": "imagenet"}, r"^data.name: unknown dataset 'imagenet'; allowed: fer2013, folder, rafdb, synthfer"),
        ({"colour": 1}, r"^data: unknown key 'colour'; allowed: name, path, options, labels"),
        (
            {"path": "/data/raf"},
            r"^data.path: synthfer is rendered, it reads no files: give no path \(got '/data/raf'\)",
        ),
        (
            {"options": {"colour": 1}},
            r"^data.options: synthfer has no option 'colour'; allowed: seed, image_size, scale, channel_order$",
        ),
        (
            {"name": "rafdb", "path": "/r", "options": {"test_seed": 1}},
            r"^data.options: rafdb has no option 'test_seed'",
        ),
        (
            {"options": {"scale": -1}},
            r"^data.options.scale: -1.0 is out of range; allowed: a float in \(0, inf\) \(scale",
        ),
        ({"options": {"image_size": "64"}}, r"^data.options.image_size: '64' is a str; allowed: a int in \[32, 224\]"),
        ({"options": [1]}, r"^data.options: \[1\] is a list; allowed: a dict"),
        (
            {"name": "folder", "path": "/f", "options": {"test_fraction": 1.0}},
            r"^data.options.test_fraction: 1.0 is out of range; allowed: a float in \(0, 1\) \(test_fraction: flat",
        ),
        (
            {"labels": 100, "labels_per_class": 5},
            r"^data: give exactly one of labels, labels_per_class, label_fraction",
        ),
        ({"labels": 50}, r"^data.labels: 50 is not allowed; allowed: 100, 400, 1000, 2000, 4000"),
        ({"val_per_class": -2}, r"^data.val_per_class: -2 is out of range; allowed: a int in \[0, inf\)"),
        ({"split_seed": 0.5}, r"^data.split_seed: 0.5 is a float"),
    ],
)
def test_errors_name_the_key_the_value_and_what_is_allowed(given, message):
    with pytest.raises(ConfigError, match=message):
        resolve_data_section(given, None)


def test_labels_per_class_replaces_the_default_budget():
    section = resolve_data_section({"labels_per_class": 5}, None)
    assert (section["labels"], section["labels_per_class"], section["label_fraction"]) == (None, 5, None)


def test_every_param_has_a_doc_and_every_loader_takes_exactly_its_options():
    assert all(p.doc for p in DATA_PARAMS.values())
    for name in DATASETS.names():
        options = source_options(name)
        assert options and all(isinstance(p, Param) and p.doc for p in options.values()), name
        loader = DATASETS.get(name)
        keywords = [p.name for p in inspect.signature(loader).parameters.values() if p.kind == p.KEYWORD_ONLY]
        assert keywords == list(options), name


def test_registration_refuses_a_loader_that_does_not_match_its_options():
    options = {"size": Param(8, "image side")}
    with pytest.raises(ValueError, match=r"keyword-only arguments \['side'\] must be its declared options \['size'\]"):

        @register_dataset("bad_names", options=options)
        def load_bad_names(path, *, side): ...

    with pytest.raises(ValueError, match="option 'size' has a default in the loader; keep it in the Param"):

        @register_dataset("bad_default", options=options)
        def load_bad_default(path, *, size=8): ...

    with pytest.raises(ValueError, match="option 'size' needs a doc string"):

        @register_dataset("bad_doc", options={"size": Param(8)})
        def load_bad_doc(path, *, size): ...

    assert not any(name.startswith("bad_") for name in DATASETS.names())


def test_source_options_of_an_unknown_source_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown dataset 'nope'; allowed: fer2013, folder, rafdb, synthfer"):
        source_options("nope")


def test_source_label_names_the_path_or_the_rendered_source():
    assert source_label(resolve_data_section({"name": "rafdb", "path": "/data/raf"}, None)) == "/data/raf"
    label = source_label(resolve_data_section({"options": {"scale": 0.05}}, Path("/")))
    assert label == "synthfer(seed=0, image_size=64, scale=0.05, channel_order='rgb')"
