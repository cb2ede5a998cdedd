"""The analyses of a results folder: hand-checked tables, the notebooks run headless, the report end to end.

Fixtures (tests/fixtures/, see its README): ``ablation/`` is a real small ablation study (6 rungs x 2 label
budgets x 2 seeds on synthfer), ``search/`` a real small random search with ASHA (6 trials, 5 stopped).
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis import sections  # noqa: E402
from analysis import tables as T  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
ABLATION, SEARCH = FIXTURES / "ablation", FIXTURES / "search"
NOTEBOOKS = ("ablation", "search", "dynamics")
RAF_CLASSES = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]


def run(*args: str, cwd: Path = ROOT, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


# ---- Student's t and the paired test, against hand-computed values ----------------------------------------


def test_betainc_closed_forms():
    assert T.betainc(1, 1, 0.3) == pytest.approx(0.3)  # I_x(1, 1) = x
    assert T.betainc(2.5, 1, 0.4) == pytest.approx(0.4**2.5)  # I_x(a, 1) = x^a
    assert T.betainc(1, 3, 0.2) == pytest.approx(1 - 0.8**3)  # I_x(1, b) = 1 - (1 - x)^b
    assert T.betainc(2, 3, 0.35) == pytest.approx(1 - T.betainc(3, 2, 0.65))  # symmetry
    assert T.betainc(0.5, 0.5, 0.5) == pytest.approx(0.5)
    assert (T.betainc(2, 2, 0.0), T.betainc(2, 2, 1.0)) == (0.0, 1.0)


@pytest.mark.parametrize(
    "t, df, p",
    [
        (1.0, 1, 0.5),  # Cauchy: 1 - (2/pi) atan(1)
        (4.0, 1, 1 - 2 / math.pi * math.atan(4)),  # 0.155958...
        (2.0, 2, 1 - 2 / math.sqrt(6)),  # df 2: p = 1 - t / sqrt(2 + t^2)
        (-2.0, 2, 1 - 2 / math.sqrt(6)),
        (2.776445105, 4, 0.05),  # the 97.5 % quantiles of the t table
        (2.228138852, 10, 0.05),
        (2.042272456, 30, 0.05),
        (0.0, 5, 1.0),
    ],
)
def test_student_t_two_sided_p(t, df, p):
    assert T.student_t_two_sided_p(t, df) == pytest.approx(p, abs=1e-7)


def test_student_t_cdf():
    assert T.student_t_cdf(0.0, 3) == pytest.approx(0.5)
    assert T.student_t_cdf(2.776445105, 4) == pytest.approx(0.975, abs=1e-7)
    assert T.student_t_cdf(-2.776445105, 4) == pytest.approx(0.025, abs=1e-7)
    assert T.student_t_cdf(math.inf, 4) == 1.0


def test_paired_t_test_by_hand():
    # d = b - a = (6, 10): mean 8, sd 2*sqrt(2), se = 2, t = 4, df = 1
    test = T.paired_t_test([50.0, 60.0], [56.0, 70.0])
    assert (test.n, test.mean_diff, test.t) == (2, pytest.approx(8.0), pytest.approx(4.0))
    assert test.p == pytest.approx(1 - 2 / math.pi * math.atan(4))
    # d = (1, 2, 3, 6): mean 3, sd sqrt(14/3), t = 3 / (sqrt(14/3) / 2) = 2.7775, df 3
    test = T.paired_t_test([0, 0, 0, 0], [1, 2, 3, 6])
    assert test.t == pytest.approx(3 / (math.sqrt(14 / 3) / 2))
    assert test.p == pytest.approx(T.betainc(1.5, 0.5, 3 / (3 + test.t**2)))
    assert 0.05 < test.p < 0.1  # t(3) 97.5 % = 3.182, 95 % = 2.353


def test_paired_t_test_degenerate():
    assert T.paired_t_test([], []).t is None
    one = T.paired_t_test([1.0], [2.0])
    assert (one.n, one.mean_diff, one.t, one.p) == (1, 1.0, None, None)
    same = T.paired_t_test([1.0, 2.0], [3.0, 4.0])  # every difference 2: no spread
    assert (same.t, same.p) == (math.inf, 0.0)
    equal = T.paired_t_test([1.0, 2.0], [1.0, 2.0])
    assert (equal.t, equal.p) == (0.0, 1.0)
    with pytest.raises(ValueError, match="equal lengths"):
        T.paired_t_test([1.0], [1.0, 2.0])


# ---- the ladder table on a hand-made study ------------------------------------------------------------------


def hand_study() -> dict:
    # the grid's order is the ladder's; the variants mapping is in another order, and neither is alphabetical
    return {
        "name": "hand",
        "variants": {"adaptive": {}, "supervised": {}, "fixmatch": {}},
        "params": {"variant": {"grid": ["supervised", "fixmatch", "adaptive"]}, "trainer.seed": {"grid": [0, 1]}},
        "search": {"metric": "best_test_acc", "mode": "max"},
        "scheduler": {"name": "none"},
    }


def hand_trials() -> pl.DataFrame:
    rows = [  # (variant, seed, best acc, best mean class acc), shuffled
        ("fixmatch", 1, 0.70, 0.50),
        ("supervised", 0, 0.50, 0.40),
        ("adaptive", 1, 0.72, 0.58),
        ("supervised", 1, 0.60, 0.44),
        ("adaptive", 0, 0.60, 0.52),
        ("fixmatch", 0, 0.56, 0.46),
    ]
    return pl.DataFrame(
        {
            "trial_id": [f"t{i}" for i in range(len(rows))],
            "status": ["complete"] * len(rows),
            "variant": [r[0] for r in rows],
            "repeat": [0] * len(rows),
            "trainer.seed": [r[1] for r in rows],
            "data.labels": [100] * len(rows),
            "best_test_acc": [r[2] for r in rows],
            "best_test_mean_class_acc": [r[3] for r in rows],
            "last_test_acc": [r[2] - 0.1 for r in rows],
            "last_test_mean_class_acc": [r[3] for r in rows],
        }
    )


def test_ladder_by_hand():
    ladder = T.ladder_table(hand_trials(), hand_study())
    assert ladder["rung"].to_list() == ["supervised", "fixmatch", "adaptive"]  # the grid's order, not alphabetical
    sup, fix, ada = ladder.iter_rows(named=True)
    assert (sup["budget"], sup["n"]) == (100, 2)
    # supervised: 50, 60 -> 55 ± 7.071; fixmatch: 56, 70 -> 63 ± 9.899; adaptive: 60, 72 -> 66 ± 8.485
    assert (sup["acc_mean"], sup["acc_std"]) == (pytest.approx(55.0), pytest.approx(math.sqrt(50)))
    assert (fix["acc_mean"], fix["acc_std"]) == (pytest.approx(63.0), pytest.approx(math.sqrt(98)))
    assert (ada["acc_mean"], ada["acc_std"]) == (pytest.approx(66.0), pytest.approx(math.sqrt(72)))
    assert (sup["mca_mean"], fix["mca_mean"], ada["mca_mean"]) == (
        pytest.approx(42.0),
        pytest.approx(48.0),
        pytest.approx(55.0),
    )
    assert sup["acc_gain_prev"] is None and sup["p_sup"] is None
    assert (fix["acc_gain_prev"], fix["acc_gain_sup"]) == (pytest.approx(8.0), pytest.approx(8.0))
    assert (ada["acc_gain_prev"], ada["acc_gain_sup"]) == (pytest.approx(3.0), pytest.approx(11.0))
    assert (ada["mca_gain_prev"], ada["mca_gain_sup"]) == (pytest.approx(7.0), pytest.approx(13.0))
    # fixmatch - supervised per seed: 6, 10 -> t = 4 (df 1); adaptive - fixmatch: 4, 2 -> t = 3; adaptive - supervised: 10, 12 -> t = 11
    assert (fix["t_prev"], fix["p_prev"], fix["n_pairs_prev"]) == (
        pytest.approx(4.0),
        pytest.approx(1 - 2 / math.pi * math.atan(4)),
        2,
    )
    assert (ada["t_prev"], ada["p_prev"]) == (pytest.approx(3.0), pytest.approx(1 - 2 / math.pi * math.atan(3)))
    assert (ada["t_sup"], ada["p_sup"]) == (pytest.approx(11.0), pytest.approx(1 - 2 / math.pi * math.atan(11)))


def test_ladder_last_epoch_statuses_and_pairing():
    trials = hand_trials()
    last = T.ladder_table(trials, hand_study(), which="last")
    assert last["acc_mean"].to_list() == pytest.approx([45.0, 53.0, 56.0])
    # a stopped trial does not count by default; its partner is left unpaired
    trials = trials.with_columns(
        pl.when(pl.col("trial_id") == "t0").then(pl.lit("stopped")).otherwise(pl.col("status")).alias("status")
    )
    ladder = T.ladder_table(trials, hand_study())
    fix = ladder.row(1, named=True)
    assert (fix["n"], fix["acc_mean"], fix["acc_std"]) == (1, pytest.approx(56.0), None)
    assert (fix["n_pairs_prev"], fix["t_prev"], fix["p_prev"]) == (1, None, None)
    assert T.ladder_table(trials, hand_study(), statuses=("complete", "stopped"))["n"].to_list() == [2, 2, 2]


def test_ladder_variants_order_and_budgets():
    study = hand_study()
    del study["params"]["variant"]  # no grid: the variants mapping's order
    trials = pl.concat(
        [
            hand_trials(),
            hand_trials().with_columns(pl.lit(400, dtype=pl.Int64).alias("data.labels"), pl.col("trial_id") + "b"),
        ]
    )
    ladder = T.ladder_table(trials, study)
    assert ladder["budget"].to_list() == [100] * 3 + [400] * 3
    assert ladder["rung"].to_list() == ["adaptive", "supervised", "fixmatch"] * 2
    shown = T.format_ladder(ladder, T.budget_label("data.labels"))
    assert shown.columns[:4] == ["Labels", "Rung", "Seeds", "Accuracy (%)"]
    assert shown["Accuracy (%)"][0] == "66.0 ± 8.5"
    assert shown["Δ acc. vs prev. (pp)"].to_list()[:3] == ["", "-11.0", "+8.0"]


def test_ladder_without_budget():
    ladder = T.ladder_table(hand_trials().drop("data.labels"), hand_study())
    assert ladder["budget"].to_list() == [None] * 3
    assert ladder["acc_mean"].to_list() == pytest.approx([55.0, 63.0, 66.0])
    assert ladder["t_sup"][2] == pytest.approx(11.0)


def test_budget_key_and_labels():
    study = {"params": {"data.labels_per_class": {"grid": [10, 40]}}}
    trials = pl.DataFrame(
        {"data.labels": [None, None], "data.labels_per_class": [10, 40], "data.label_fraction": [None, None]}
    )
    assert T.budget_key(trials, study) == "data.labels_per_class"
    assert (
        T.budget_key(trials.drop("data.labels_per_class").with_columns(pl.lit(0.1).alias("data.label_fraction")), {})
        == "data.label_fraction"
    )
    assert T.metric_title("best_test_acc") == "Best test accuracy (%)"
    assert T.metric_title("last_val_mean_class_acc") == "Last-epoch validation mean class accuracy (%)"


# ---- the fixtures: a real ablation and a real ASHA search ------------------------------------------------


@pytest.fixture(scope="module")
def ablation() -> T.Results:
    return T.load_results(ABLATION)


@pytest.fixture(scope="module")
def search() -> T.Results:
    return T.load_results(SEARCH)


def test_fixture_ladder_matches_trials(ablation):
    ladder = T.ladder_table(ablation.trials, ablation.study)
    assert ladder["rung"].unique(maintain_order=True).to_list() == ablation.study["params"]["variant"]["grid"]
    assert ladder["budget"].unique().sort().to_list() == [100, 400]
    done = ablation.trials.filter(pl.col("status") == "complete")
    for row in ladder.iter_rows(named=True):
        accs = done.filter((pl.col("variant") == row["rung"]) & (pl.col("data.labels") == row["budget"]))[
            "best_test_acc"
        ].to_list()
        assert row["n"] == len(accs)
        assert row["acc_mean"] == pytest.approx(100 * sum(accs) / len(accs))


def test_fixture_search_tables(search):
    best = T.best_trials(search.trials, search.study, k=3)
    assert best["rank"].to_list() == [1, 2, 3]
    values = best["best_test_acc_pct"].to_list()
    assert values == sorted(values, reverse=True)
    assert values[0] == pytest.approx(100 * search.trials["best_test_acc"].max())
    assert {"components.threshold.floor", "components.negative.rho"} <= set(best.columns)
    stops = T.asha_stops(search.trials)
    assert stops["total"].sum() == search.trials.height
    assert stops.filter(pl.col("epochs_done") == search.study["scheduler"]["max_t"])["complete"].sum() >= 1
    assert stops["stopped"].sum() == (search.trials["status"] == "stopped").sum()
    summary = T.param_summary(search.trials, search.study)
    assert summary["param"].to_list() == list(search.study["params"])
    assert summary["n"].to_list() == [search.trials.height] * 2


def test_fixture_importance(search):
    table, how = T.param_importance(search.trials, search.study, method="ped-anova")
    assert set(table["param"].to_list()) == set(search.study["params"])
    assert table["importance"].sum() == pytest.approx(1.0)
    assert "PED-ANOVA" in how
    if T.importance_method() == "fanova":
        assert "fANOVA" in T.param_importance(search.trials, search.study)[1]
    empty, why = T.param_importance(search.trials.head(2), search.study)
    assert empty.height == 0 and "too few" in why


def test_fixture_dynamics(ablation):
    epochs, trials, study = ablation.epochs, ablation.trials, ablation.study
    assert T.class_names(epochs) == RAF_CLASSES
    best = T.best_trial_id(trials, study)
    assert trials.filter(pl.col("trial_id") == best)["best_test_acc"][0] == trials["best_test_acc"].max()
    epoch = T.best_epoch(epochs, best)
    row = epochs.filter((pl.col("trial_id") == best) & (pl.col("epoch") == epoch)).row(0, named=True)
    assert row["test_acc"] == pytest.approx(row["best_test_acc"])
    per_class, counts = T.per_class_accuracy(epochs, best, epoch), T.confusion(epochs, best, epoch)
    assert per_class["class"].to_list() == RAF_CLASSES
    matrix = [list(r[1:]) for r in counts.iter_rows()]
    for i, (acc, support) in enumerate(zip(per_class["accuracy_pct"], per_class["support"])):
        assert support == sum(matrix[i])
        assert acc == pytest.approx(100 * matrix[i][i] / support)
    percent = T.confusion(epochs, best, epoch, normalize=True)
    assert [sum(r[1:]) for r in percent.iter_rows()] == pytest.approx([100.0] * 7)
    with_thr = T.best_trial_id(trials, study, ["threshold_fear"], epochs)
    thr = T.thresholds(epochs, with_thr)
    assert thr.height == 7 * epochs.filter(pl.col("trial_id") == with_thr).height
    assert thr["class"].unique(maintain_order=True).to_list() == RAF_CLASSES


def test_fixture_threshold_trial_and_chance_levels(ablation):
    epochs, trials, study = ablation.epochs, ablation.trials, ablation.study
    trial, moving = T.threshold_trial(trials, epochs, study)
    assert moving
    row = trials.filter(pl.col("trial_id") == trial).row(0, named=True)
    assert row["components.threshold.mode"] == "adaptive"  # fixmatch's fixed thresholds never move
    moved = T.thresholds(epochs, trial)["threshold"]
    assert moved.min() == pytest.approx(row["components.threshold.floor"]) and moved.max() > moved.min()
    levels = T.chance_levels(epochs)
    support = [sum(r) for r in epochs["test_confusion"][0]]
    assert levels["majority_class"] == RAF_CLASSES[support.index(max(support))] == "happiness"  # RAF-DB's largest class
    assert levels["majority_pct"] == pytest.approx(100 * max(support) / sum(support))
    assert levels["chance_mca_pct"] == pytest.approx(100 / 7)


def test_fixture_curves_are_means_over_seeds(ablation):
    epochs, trials, study = ablation.epochs, ablation.trials, ablation.study
    table = T.curves(epochs, trials, study, ["unlabeled_mask_rate", "test_acc"], max_groups=50)
    assert table["group"][0] == "supervised · 100 labels"  # ladder order, then budget
    ids = trials.filter((pl.col("variant") == "lion") & (pl.col("data.labels") == 400))["trial_id"]
    raw = epochs.filter(pl.col("trial_id").is_in(ids.to_list()) & (pl.col("epoch") == 2))["test_acc"]
    got = table.filter((pl.col("group") == "lion · 400 labels") & (pl.col("epoch") == 2))
    assert got["n"][0] == raw.len()
    assert got["test_acc_pct"][0] == pytest.approx(100 * raw.mean())


def test_applicable_sections(ablation, search):
    assert sections.applicable(ablation) == ["ablation", "dynamics"]  # rungs, budgets and seeds are not tuned
    assert sections.applicable(search) == ["search", "dynamics"]


def test_markdown_table():
    frame = pl.DataFrame({"name": ["a|b", None], "acc_pct": [12.345, None], "x": [0.000123456, 2.0]})
    assert sections.to_markdown(frame).splitlines() == [
        "| name | acc_pct | x |",
        "|---|---:|---:|",
        "| a\\|b | 12.3 | 0.0001235 |",
        "|  |  | 2 |",
    ]


# ---- loading errors -----------------------------------------------------------------------------------------


def test_load_errors(tmp_path):
    with pytest.raises(T.ResultsError, match="no such results folder"):
        T.load_results(tmp_path / "nope")
    (tmp_path / "trials.parquet").write_bytes((ABLATION / "trials.parquet").read_bytes())
    with pytest.raises(T.ResultsError, match="missing epochs.parquet, study.json"):
        T.load_results(tmp_path)
    (tmp_path / "epochs.parquet").write_text("not parquet")
    (tmp_path / "study.json").write_text("{}")
    with pytest.raises(T.ResultsError, match="cannot read the Parquet files"):
        T.load_results(tmp_path)


# ---- the notebooks and the report, headless ----------------------------------------------------------------

EXPECTED = {
    "ablation": ["ladder.png", "ladder.md", "ladder.csv"],
    "search": [
        "best_trials.md",
        "best_trials.csv",
        "params.png",
        "importance.png",
        "importance.csv",
        "stops.png",
        "stops.md",
    ],
    "dynamics": [
        "thresholds.png",
        "unlabeled.png",
        "negative.png",
        "per_class.png",
        "confusion.png",
        "confusion.csv",
        "per_class.md",
    ],
}


@pytest.mark.parametrize("name, folder", [("ablation", ABLATION), ("search", SEARCH), ("dynamics", ABLATION)])
def test_notebook_exports(name, folder, tmp_path):
    out = tmp_path / name
    done = run(f"analysis/{name}.py", "--", str(folder), "--out", str(out))
    assert done.returncode == 0, done.stderr
    for file in EXPECTED[name]:
        assert (out / file).is_file() and (out / file).stat().st_size > 0, file
    if name == "ablation":
        md = (out / "ladder.md").read_text()
        assert md.index("| supervised |") < md.index("| fixmatch |") < md.index("| lion |")


def test_notebook_without_folder():
    done = run("analysis/ablation.py")
    assert done.returncode == 2
    assert "no results folder given" in done.stderr and "Traceback" not in done.stderr


def test_report_end_to_end(tmp_path):
    out = tmp_path / "report"
    done = run("-m", "ablate.report", str(ABLATION), "--out", str(out), cwd=tmp_path)  # not from the repository root
    assert done.returncode == 0, done.stderr
    assert "index.md" in done.stdout
    index = (out / "index.md").read_text()
    assert "## Ablation ladder" in index and "## Training dynamics" in index and "## Search" not in index
    for link in [line.split("](")[1].split(")")[0] for line in index.splitlines() if "](" in line]:
        assert (out / link).is_file(), link
    if (out / "index.html").exists():  # when the markdown package is installed (marimo brings it)
        assert '<img alt="Ablation ladder" src="ablation/ladder.png"' in (out / "index.html").read_text()
    for file in EXPECTED["ablation"]:
        assert (out / "ablation" / file).is_file()
    for file in EXPECTED["dynamics"]:
        assert (out / "dynamics" / file).is_file()


def test_report_default_out_and_search(tmp_path):
    folder = tmp_path / "search"
    folder.mkdir()
    for name in ("trials.parquet", "epochs.parquet", "study.json"):
        (folder / name).write_bytes((SEARCH / name).read_bytes())
    done = run("-m", "ablate.report", str(folder))
    assert done.returncode == 0, done.stderr
    assert (folder / "report" / "index.md").is_file()
    for file in EXPECTED["search"]:
        assert (folder / "report" / "search" / file).is_file()
    assert not (folder / "report" / "ablation").exists()


def test_report_when_every_trial_failed(tmp_path):
    trials = pl.read_parquet(SEARCH / "trials.parquet").with_columns(
        pl.lit("error").alias("status"),
        pl.lit("ValueError: boom").alias("error"),
        pl.lit(0, dtype=pl.Int64).alias("epochs_done"),
        *[
            pl.lit(None, dtype=pl.Float64).alias(c)
            for c in ("best_test_acc", "last_test_acc", "best_test_mean_class_acc", "last_test_mean_class_acc")
        ],
    )
    trials.write_parquet(tmp_path / "trials.parquet")
    pl.DataFrame(schema={"trial_id": pl.String, "epoch": pl.Int64}).write_parquet(
        tmp_path / "epochs.parquet"
    )  # as results.py writes it
    (tmp_path / "study.json").write_bytes((SEARCH / "study.json").read_bytes())
    res = T.load_results(tmp_path)
    index = sections.write_report(res, tmp_path / "report")
    text = index.read_text()
    assert "6 trials: 0 complete, 0 stopped, 6 error" in text and "ValueError: boom" in text
    assert (tmp_path / "report" / "dynamics" / "confusion.png").is_file()


def test_report_errors(tmp_path):
    done = run("-m", "ablate.report", str(tmp_path / "missing"))
    assert done.returncode == 2
    assert (
        str(tmp_path / "missing") in done.stderr and "trials.parquet" in done.stderr and "Traceback" not in done.stderr
    )
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "study.json").write_text("{}")
    done = run("-m", "ablate.report", str(tmp_path / "half"))
    assert done.returncode == 2
    assert "missing trials.parquet, epochs.parquet" in done.stderr and "Traceback" not in done.stderr


def test_marimo_check():
    if run("-m", "marimo", "check", "--help").returncode != 0:
        pytest.skip("this marimo has no `marimo check` subcommand")
    # --ignore-scripts: analysis/ also holds the plain modules (tables, plots, sections) the notebooks import
    done = run(
        "-m",
        "marimo",
        "check",
        "--strict",
        "--ignore-scripts",
        *[f"analysis/{n}.py" for n in NOTEBOOKS],
        "analysis/tables.py",
    )
    assert done.returncode == 0, done.stdout + done.stderr
