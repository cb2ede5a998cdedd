import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="Search")

with app.setup:
    # A search's results folder: the best trials, each searched parameter against the metric, the parameters'
    # importance (fANOVA with scikit-learn, else PED-ANOVA), and where ASHA stopped trials.
    #   python analysis/search.py -- results/lion --out results/lion/report/search
    #   marimo edit analysis/search.py -- results/lion
    # The tables and figures come from ablate/report/sections.py; this notebook only shows and exports them.
    # --which val|last|oracle picks the test numbers shown (default: at each trial's best-validation epoch).
    import marimo as mo

    from ablate.report import notebook, sections
    from ablate.report.section import heading


@app.cell
def _():
    args, res, problem = notebook.notebook_setup("search", script=mo.app_meta().mode == "script")
    mo.stop(res is None, mo.md(f"**{problem}**"))
    return args, res


@app.cell
def _(args, res):
    # The summary first: the best config against chance, the majority class and the baselines.
    overview = sections.summary(res, which=args.which)
    mo.vstack([mo.md(overview.heading(2)), *[mo.vstack([mo.md(heading(t, 3)), t.shown]) for t in overview.tables]])
    return


@app.cell
def _(args, res):
    section = sections.search(res, which=args.which)
    mo.md(section.heading(1))
    return (section,)


@app.cell
def _(section):
    best = section.table("best_trials")
    mo.vstack([mo.md(heading(best, 2)), best.data])
    return


@app.cell
def _(section):
    params = section.table("params")
    mo.vstack([mo.md(heading(params, 2)), params.data, section.figure("params").figure])
    return


@app.cell
def _(section):
    importance = section.table("importance")
    mo.vstack([mo.md(heading(importance, 2)), importance.data, section.figure("importance").figure])
    return


@app.cell
def _(section):
    stops = section.table("stops")
    mo.vstack([mo.md(heading(stops, 2)), stops.data, section.figure("stops").figure])
    return


@app.cell
def _(args, section):
    mo.md(notebook.export_note(section, args.out))
    return


if __name__ == "__main__":
    app.run()
