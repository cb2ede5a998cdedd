"""The study schema's honest defaults: validation selection, baselines, names and GPU shares; no Ray."""

import json
from pathlib import Path

import pytest

from ablate.config.compose import compose_config
from ablate.config.metrics import SEARCH_METRICS, TEST_SELECTED_METRICS
from ablate.config.study import check_name, load_study, trial_config
from ablate.errors import ConfigError
from ablate.sweep.baselines import baseline_points, baseline_seeds, data_conditions, reference, split_sections

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "search_spaces" / "smoke.yaml"
VAL = "data.val_per_class=10"  # smoke's 28 fear faces hold 10 labeled + 10 validation


def test_the_search_metric_defaults_to_validation(tmp_path):
    file = tmp_path / "s.yaml"
    file.write_text("data: {val_per_class: 5}\ncomponents: {supervised: {enabled: true}}\n")
    assert load_study(file).search["metric"] == "best_val_acc"
    assert load_study(file).search["select_on_test"] is False


@pytest.mark.parametrize("metric", TEST_SELECTED_METRICS)
def test_a_test_metric_is_refused_without_the_opt_in(metric):
    with pytest.raises(ConfigError) as err:
        load_study(SMOKE, [VAL, f"search.metric={metric}"])
    text = str(err.value)
    assert f"search.metric: {metric!r} is a test metric" in text
    assert all(m in text for m in SEARCH_METRICS) and "search.select_on_test: true" in text
    study = load_study(SMOKE, [VAL, f"search.metric={metric}", "search.select_on_test=true"])
    assert study.search["metric"] == metric and study.search["select_on_test"] is True


def test_every_shipped_study_selects_on_validation():
    for file in sorted((ROOT / "search_spaces").glob("*.yaml")):
        study = load_study(file)
        assert study.search["metric"] in SEARCH_METRICS, file.name
        assert not study.search["select_on_test"], file.name
        assert list(study.baselines) == ["supervised"], file.name


def test_the_supervised_baseline_switches_on_the_presets_components_with_the_studys_settings():
    study = load_study(ROOT / "search_spaces" / "lion.yaml", ["data.val_per_class=10"])
    config = study.baselines["supervised"]
    on = sorted(name for name, c in config["components"].items() if c["enabled"])
    assert on == ["ema", "supervised"]  # the preset's components, nothing else
    # the study's own settings for the components both enable: lion's weight 0.5 and its 300-step EMA decay 0.99
    assert config["components"]["supervised"]["weight"] == 0.5
    assert config["components"]["ema"]["decay"] == 0.99
    # the rest is the study's base: same data, budget, steps, model
    for section in ("data", "model", "trainer", "augment"):
        assert config[section] == study.base[section]


def test_ablation_baseline_is_its_old_bottom_rung():
    study = load_study(ROOT / "search_spaces" / "ablation.yaml", ["data.val_per_class=10"])
    assert "supervised" not in study.variants
    assert study.baselines["supervised"] == study.base  # the base was the supervised rung
    points = baseline_points(study)
    assert len(points) == 3  # 1 budget x 3 seeds, as the ladder's rungs
    assert {(p["data.labels"], p["trainer.seed"]) for p in points} == {(400, s) for s in (0, 1, 2)}


def test_baseline_seeds_follow_the_search():
    optuna = load_study(SMOKE, [VAL, "search.algorithm=optuna", "search.repeats=3", "trainer.seed=5"])
    assert baseline_seeds(optuna) == [5, 6, 7]
    grid = load_study(SMOKE, [VAL, "search.algorithm=grid", "params.trainer.seed={grid: [0, 10]}"])
    assert baseline_seeds(grid) == [0, 10]
    repeated = load_study(
        SMOKE, [VAL, "search.algorithm=random", "search.repeats=2", "params.trainer.seed={choice: [0, 10]}"]
    )
    assert baseline_seeds(repeated) == [0, 1, 10, 11]
    assert baseline_seeds(load_study(SMOKE, [VAL])) == [0]


def test_baseline_seeds_may_be_given_when_the_search_has_too_few():
    """A search with one seed per config still gets a baseline spread over seeds: baseline_seeds."""
    study = load_study(SMOKE, [VAL, "search.algorithm=optuna", "baseline_seeds=[0, 1, 2]"])
    assert baseline_seeds(study) == [0, 1, 2]
    assert [(p["trainer.seed"], p["repeat"]) for p in baseline_points(study)] == [(0, 0), (1, 1), (2, 2)]
    for bad, message in (
        ("baseline_seeds=[0, 0]", r"baseline_seeds: expected a list of distinct integer seeds"),
        ("baseline_seeds=3", r"baseline_seeds: expected a list of distinct integer seeds, e.g. \[0, 1, 2\]; got 3"),
        ("baseline_seeds=[]", r"baseline_seeds: expected a list"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_study(SMOKE, [VAL, bad])
    with pytest.raises(ConfigError, match=r"baseline_seeds: the study has no baselines"):
        load_study(SMOKE, [VAL, "baselines=[]", "baseline_seeds=[0, 1]"])


def test_baselines_cross_every_searched_split():
    study = load_study(
        SMOKE,
        [VAL, "search.algorithm=grid", "params.data.split_seed={grid: [0, 1]}", "params.trainer.seed={grid: [0, 1]}"],
    )
    points = baseline_points(study)
    assert len(points) == 4
    assert {(p["data.split_seed"], p["trainer.seed"], p["repeat"]) for p in points} == {
        (0, 0, 0),
        (0, 1, 1),
        (1, 0, 0),
        (1, 1, 1),
    }
    config = trial_config(study.base, study.variants, points[-1], study.baselines)
    assert config["data"]["split_seed"] == 1 and config["trainer"]["seed"] == 1
    assert not config["components"]["negative"]["enabled"]


def test_a_variant_that_changes_the_budget_gets_its_own_baselines(tmp_path):
    file = tmp_path / "v.yaml"
    file.write_text(
        "data: {labels: 100, val_per_class: 5}\ncomponents: {supervised: {enabled: true}}\n"
        "variants: {small: {}, large: {data: {labels: null, labels_per_class: 20}}}\n"
        "search: {algorithm: grid}\n"
        "params: {variant: {grid: [small, large]}}\n"
        "baselines: [supervised]\n"
    )
    study = load_study(file)
    conditions = data_conditions(study)
    assert conditions == [
        {"data.labels": 100, "data.labels_per_class": None},
        {"data.labels": None, "data.labels_per_class": 20},
    ]
    configs = [trial_config(study.base, study.variants, p, study.baselines) for p in baseline_points(study)]
    assert [(c["data"]["labels"], c["data"]["labels_per_class"]) for c in configs] == [(100, None), (None, 20)]
    sections = [w for w, _ in split_sections(study)]
    assert sections == ["synthfer (variant=small)", "synthfer (variant=large)"]


def test_a_baseline_without_unlabeled_faces_runs_once_per_seed_whatever_the_pool(tmp_path):
    """The FixMatch family counts the labeled faces in its unlabeled pool, Ada-CM does not: supervised-only reads
    no unlabeled face, so it runs once per seed (at the base's pool), while a FixMatch baseline, which reads them,
    runs at both pools."""
    file = tmp_path / "pools.yaml"
    file.write_text(
        "data: {labels: 100, val_per_class: 5}\ncomponents: {supervised: {enabled: true}}\n"
        "variants: {fixmatch_like: {data: {labeled_in_unlabeled: true}}, adacm_like: {}}\n"
        "search: {algorithm: grid}\n"
        "params: {variant: {grid: [fixmatch_like, adacm_like]}, trainer.seed: {grid: [0, 1]}}\n"
        "baselines: [supervised, fixmatch]\n"
    )
    study = load_study(file)
    assert data_conditions(study) == [{"data.labeled_in_unlabeled": True}, {"data.labeled_in_unlabeled": False}]
    points = baseline_points(study)
    supervised = [(p["data.labeled_in_unlabeled"], p["trainer.seed"]) for p in points if p["baseline"] == "supervised"]
    fixmatch = [(p["data.labeled_in_unlabeled"], p["trainer.seed"]) for p in points if p["baseline"] == "fixmatch"]
    assert supervised == [(False, 0), (False, 1)]
    assert fixmatch == [(True, 0), (True, 1), (False, 0), (False, 1)]


def test_a_continuous_searched_split_cannot_have_baselines():
    study = load_study(
        SMOKE, [VAL, "params.data.label_fraction={uniform: [0.1, 0.3]}", "data.labels=null", "data.label_fraction=0.2"]
    )
    with pytest.raises(ConfigError, match=r"params.data.label_fraction: baselines are trained at every value"):
        baseline_points(study)
    # the splits to check take the range's two ends
    assert [d["label_fraction"] for _, d in split_sections(study)] == [0.1, 0.3]


def test_unknown_baseline_preset_is_refused():
    allowed = r"adacm, adacm_fast, fixmatch, fixmatch_fast, flexmatch, freematch, leaf, leaf_fast, lion, softmatch"
    with pytest.raises(ConfigError, match=rf"baselines: unknown preset 'oracle'; allowed: {allowed}"):
        load_study(SMOKE, [VAL, "baselines=[oracle]"])
    assert load_study(SMOKE, [VAL, "baselines=[]"]).baselines == {}


def test_compose_matches_the_resolved_config():
    """The results reader composes a failed trial's config without the training code: it must agree."""
    study = load_study(SMOKE, [VAL, "search.algorithm=optuna", "search.repeats=2"])
    for sampled in (
        {"components.negative.rho": 0.8, "__trial_index__": 1},
        {"data.labels_per_class": 5},  # a budget key clears the base's labels: 100
        {"data.label_fraction": 0.5, "data.split_seed": 3},
    ):
        composed = compose_config(study.base, study.variants, sampled)
        assert composed == trial_config(study.base, study.variants, sampled), sampled
    point = baseline_points(study)[1]
    assert compose_config(study.base, study.variants, point, study.baselines) == trial_config(
        study.base, study.variants, point, study.baselines
    )


def test_reference_of_a_test_split_by_hand():
    ref = reference(("a", "b", "c", "d"), [10, 50, 30, 10])
    assert ref["chance"] == 0.25 and ref["majority_class"] == "b"
    assert ref["majority_test_acc"] == 0.5 and ref["majority_test_mean_class_acc"] == 0.25
    assert ref["test_class_counts"] == [10, 50, 30, 10]


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "/abs", "a b", "-x", "a\\b"])
def test_names_that_are_not_one_folder_are_refused(name):
    with pytest.raises(ConfigError, match="is not a study name"):
        check_name(name, "--name")


def test_a_plain_name_is_accepted():
    assert check_name("lion-v2.1_b") == "lion-v2.1_b"


@pytest.mark.parametrize("gpu,ok", [(0, True), (0.25, True), (0.5, True), (1, True), (2, True), (1.5, False)])
def test_a_gpu_share_is_a_fraction_below_one_or_whole(gpu, ok):
    if ok:
        assert load_study(SMOKE, [VAL, f"resources.gpu={gpu}"]).resources["gpu"] == gpu
    else:
        with pytest.raises(ConfigError, match=r"resources.gpu: 1.5 is neither a fraction below 1 nor a whole number"):
            load_study(SMOKE, [VAL, f"resources.gpu={gpu}"])


# ---- a key given twice --------------------------------------------------------------------------------------

DUPLICATED = {
    "name twice": ("name: a\ndata: {val_per_class: 5}\nname: b\n", 3, "name", 1),
    "a second params block": (
        "data: {val_per_class: 5}\nparams:\n  trainer.lr: {uniform: [0.001, 0.01]}\n"
        "search: {num_samples: 2}\nparams:\n  trainer.seed: {grid: [0, 1]}\n",
        5,
        "params",
        2,
    ),
    "nested": ("data: {val_per_class: 5}\ntrainer:\n  epochs: 2\n  batch_size: 8\n  epochs: 3\n", 5, "epochs", 3),
    "in a flow mapping": ("data: {val_per_class: 5, labels: 100, val_per_class: 4}\n", 1, "val_per_class", 1),
}


@pytest.mark.parametrize("text,line,key,first", DUPLICATED.values(), ids=DUPLICATED.keys())
def test_a_key_given_twice_is_refused_with_the_file_the_line_and_the_key(tmp_path, text, line, key, first):
    file = tmp_path / "twice.yaml"
    file.write_text("components: {supervised: {enabled: true}}\n" + text)
    with pytest.raises(ConfigError) as err:
        load_study(file)
    assert str(err.value) == (
        f"{file}, line {line + 1}: the key {key!r} is given twice (first on line {first + 1}); YAML would keep only "
        "the last value: give each key once"
    )


def test_a_yaml_merge_may_still_override_what_it_merges(tmp_path):
    file = tmp_path / "merge.yaml"
    file.write_text(
        "components: {supervised: {enabled: true}}\ndata: {val_per_class: 5}\n"
        "variants:\n  short: &short {trainer: {epochs: 1}}\n  shorter:\n    <<: *short\n    trainer: {epochs: 2}\n"
    )
    assert load_study(file).variants["shorter"] == {"trainer": {"epochs": 2}}


def test_a_key_given_twice_in_a_preset_or_a_set_value_is_refused(tmp_path):
    from ablate.config.run import load_config

    preset = tmp_path / "preset.yaml"
    preset.write_text("components:\n  supervised: {enabled: true}\n  supervised: {enabled: false}\n")
    with pytest.raises(ConfigError, match=r"preset.yaml, line 3: the key 'supervised' is given twice"):
        load_config(preset)
    with pytest.raises(ConfigError) as err:
        load_study(SMOKE, [VAL, "data.options={seed: 1, seed: 2}"])
    expected = "--set 'data.options={seed: 1, seed: 2}': the key 'seed' is given twice; give each key once"
    assert str(err.value) == expected


def test_report_min_effect_and_confirm_in_the_study_file():
    study = load_study(SMOKE, [VAL])
    assert study.report == {"min_effect": None} and study.search["confirm"] is True
    assert load_study(SMOKE, [VAL, "report={min_effect: 2}"]).report == {"min_effect": 2.0}
    assert load_study(SMOKE, [VAL, "search.confirm=false"]).search["confirm"] is False
    with pytest.raises(ConfigError, match=r"report.min_effect: -1"):
        load_study(SMOKE, [VAL, "report={min_effect: -1}"])
    with pytest.raises(ConfigError, match=r"report: unknown key 'alpha'; allowed: min_effect"):
        load_study(SMOKE, [VAL, "report={alpha: 0.1}"])


def test_report_min_effect_flag():
    from ablate.report.command import parse_args

    assert parse_args(["results/x", "--min-effect", "2.5"]).min_effect == 2.5
    assert parse_args(["results/x"]).min_effect is None
    with pytest.raises(SystemExit):
        parse_args(["results/x", "--min-effect", "0"])


def test_seeds_until_decided_in_the_study_file():
    from ablate.sweep.until_decided import sequence

    study = load_study(SMOKE, [VAL, "search.repeats={min: 3, max: 6, until: decided}"])
    assert study.search["repeats"] == 3 and study.search["seeds_until_decided"] == 6
    assert baseline_seeds(study) == [0, 1, 2] and sequence(study) == [0, 1, 2, 3, 4, 5]
    assert load_study(SMOKE, [VAL]).search["seeds_until_decided"] is None
    same = load_study(SMOKE, [VAL, "search.repeats=3", "search.seeds_until_decided=6"])
    assert same.search == study.search
    for bad, words in (
        ("search.repeats={min: 3, max: 6}", r"search.repeats: .*expected \{min: N, max: M, until: decided\}"),
        ("search.repeats={min: 3, max: 6, until: done}", r"search.repeats: .*until.*done"),
        ("search.repeats={min: 4, max: 3, until: decided}", r"search.repeats: min 4, max 3; expected"),
        ("search.repeats={min: 0, max: 3, until: decided}", r"search.repeats: min 0, max 3; expected"),
    ):
        with pytest.raises(ConfigError, match=words):
            load_study(SMOKE, [VAL, bad])
    until = "search.repeats={min: 2, max: 4, until: decided}"
    with pytest.raises(ConfigError, match=r"seeds_until_decided: needs baselines"):
        load_study(SMOKE, [VAL, until, "baselines=[]"])
    with pytest.raises(ConfigError, match=r"seeds_until_decided: needs search.confirm: true"):
        load_study(SMOKE, [VAL, until, "search.confirm=false"])
    with pytest.raises(ConfigError, match=r"seeds_until_decided: the seeds are trainer.seed \+ 0, 1"):
        load_study(SMOKE, [VAL, until, "baseline_seeds=[0, 5]"])
    one = load_study(SMOKE, [VAL, "search.seeds_until_decided=4"])  # repeats 1: one seed, no first look
    with pytest.raises(ConfigError, match=r"the first look needs at least 2 paired seeds, the study has 1"):
        sequence(one)


def test_an_added_seed_runs_every_baseline_at_the_best_configs_condition():
    """Seeds until decided add the baselines at the best config's data condition only; supervised-only reads no
    unlabeled face, so a FixMatch-family best config (labeled faces in the pool) still pairs with it."""
    import polars as pl

    from ablate.sweep.until_decided import baseline_points_at, sequence

    policies = str(Path(__file__).resolve().parents[1] / "search_spaces" / "threshold_policies.yaml")
    study = load_study(policies, ["search.seeds_until_decided=5", "baselines=[supervised, fixmatch]"])
    assert sequence(study) == [0, 1, 2, 3, 4]
    best = pl.DataFrame([{"trial_id": "t", "data.labels": 400, "data.labeled_in_unlabeled": True}])
    points = baseline_points_at(study, best, "t", 3)
    assert [(p["baseline"], p["trainer.seed"], p["repeat"]) for p in points] == [
        ("supervised", 3, 3),
        ("fixmatch", 3, 3),
    ]
    assert [p["data.labeled_in_unlabeled"] for p in points] == [False, True]  # supervised: the base's pool
    other = pl.DataFrame([{"trial_id": "t", "data.labels": 400, "data.labeled_in_unlabeled": False}])
    assert [p["data.labeled_in_unlabeled"] for p in baseline_points_at(study, other, "t", 4)] == [False, False]


def test_a_study_from_before_a_new_setting_still_resumes():
    """study.json of a study started before search.seeds_until_decided existed lacks the key; left null, it is
    no difference, set, it is one."""
    from ablate.sweep.driver import resume_differences, study_record

    now = study_record(load_study(SMOKE, [VAL]), {})
    stored = json.loads(json.dumps(now))
    del stored["search"]["seeds_until_decided"]
    assert resume_differences(stored, now) == []
    later = study_record(load_study(SMOKE, [VAL, "search.seeds_until_decided=4", "search.repeats=2"]), {})
    assert "search.seeds_until_decided: '(absent)' -> 4" in resume_differences(stored, later)
