import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="Ablation ladder")

with app.setup:
    # The ablation ladder of a study's results folder: which component earns its keep, per label budget.
    #   python analysis/ablation.py -- results/ablation --out results/ablation/report/ablation
    #   marimo edit analysis/ablation.py -- results/ablation
    # The tables and figures come from ablate/report/sections.py; this notebook only shows and exports them.
    # --which val|last|oracle picks the test numbers shown (default: at each trial's best-validation epoch).
    import marimo as mo

    from ablate.report import notebook, sections
    from ablate.report.section import heading


@app.cell
def _():
    args, res, problem = notebook.notebook_setup("ablation", script=mo.app_meta().mode == "script")
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
    section = sections.ablation(res, which=args.which)
    mo.md(section.heading(1))
    return (section,)


@app.cell
def _(section):
    ladder = section.table("ladder")
    mo.vstack([mo.md(heading(ladder, 2)), ladder.display])
    return


@app.cell
def _(section):
    section.figure("ladder").figure
    return


@app.cell
def _(section):
    mo.accordion({"The ladder's numbers (as written to ladder.csv)": section.table("ladder").data})
    return


@app.cell
def _(args, section):
    mo.md(notebook.export_note(section, args.out))
    return


if __name__ == "__main__":
    app.run()
