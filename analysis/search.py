import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="Search")

with app.setup:
    # A search's results folder: the best trials, each searched parameter against the metric, the parameters'
    # importance (fANOVA with scikit-learn, else PED-ANOVA), and where ASHA stopped trials.
    #   python analysis/search.py -- results/lion --out results/lion/report/search
    #   marimo edit analysis/search.py -- results/lion
    # The tables and figures come from analysis/sections.py; this notebook only shows and exports them.
    import marimo as mo

    from analysis import sections


@app.cell
def _():
    args, res, problem = sections.notebook_setup("search", script=mo.app_meta().mode == "script")
    mo.stop(res is None, mo.md(f"**{problem}**"))
    return args, res


@app.cell
def _(res):
    section = sections.search(res)
    mo.md(section.heading(1))
    return (section,)


@app.cell
def _(section):
    best = section.table("best_trials")
    mo.vstack([mo.md(sections.heading(best, 2)), best.data])
    return


@app.cell
def _(section):
    params = section.table("params")
    mo.vstack([mo.md(sections.heading(params, 2)), params.data, section.figure("params").figure])
    return


@app.cell
def _(section):
    importance = section.table("importance")
    mo.vstack([mo.md(sections.heading(importance, 2)), importance.data, section.figure("importance").figure])
    return


@app.cell
def _(section):
    stops = section.table("stops")
    mo.vstack([mo.md(sections.heading(stops, 2)), stops.data, section.figure("stops").figure])
    return


@app.cell
def _(args, section):
    mo.md(sections.export_note(section, args.out))
    return


if __name__ == "__main__":
    app.run()
