import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="Training dynamics")

with app.setup:
    # What happened during training: accuracy over epochs, per-class thresholds, mask rate and pseudo-label
    # accuracy, the negative component's correctness over epochs, and the best trial's per-class accuracy and
    # confusion matrix.
    #   python analysis/dynamics.py -- results/ablation --out results/ablation/report/dynamics
    #   marimo edit analysis/dynamics.py -- results/ablation
    # The tables and figures come from ablate/report/sections.py; this notebook only shows and exports them.
    # --which val|last|oracle picks the test numbers shown (default: at each trial's best-validation epoch).
    import marimo as mo

    from ablate.report import notebook, sections
    from ablate.report.section import heading


@app.cell
def _():
    args, res, problem = notebook.notebook_setup("dynamics", script=mo.app_meta().mode == "script")
    mo.stop(res is None, mo.md(f"**{problem}**"))
    return args, res


@app.cell
def _(args, res):
    section = sections.dynamics(res, which=args.which)
    mo.md(section.heading(1))
    return (section,)


@app.cell
def _(section):
    thresholds = section.table("thresholds")
    mo.vstack([mo.md(heading(thresholds, 2)), section.figure("thresholds").figure, thresholds.data])
    return


@app.cell
def _(section):
    mo.vstack(
        [
            mo.md(f"## {section.table('accuracy').title}"),
            section.figure("accuracy").figure,
            mo.md(f"## {section.table('unlabeled').title}"),
            section.figure("unlabeled").figure,
            mo.md(f"## {section.table('negative').title}"),
            section.figure("negative").figure,
        ]
    )
    return


@app.cell
def _(section):
    mo.vstack(
        [
            mo.md(heading(section.table("per_class"), 2)),
            mo.hstack([section.figure("per_class").figure, section.figure("confusion").figure]),
        ]
    )
    return


@app.cell
def _(args, section):
    mo.md(notebook.export_note(section, args.out))
    return


if __name__ == "__main__":
    app.run()
