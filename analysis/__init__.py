"""Analyses of a study's results folder (``trials.parquet``, ``epochs.parquet``, ``study.json``).

Reading and rules:
- ``results``: load a results folder (older ones too).
- ``study_layout``: budgets, rungs (baselines first), seeds and configs, searched keys, class names.
- ``selection``: the shown numbers (``--which`` val / last / oracle), the ranking, which trials count, the best
  config, the epoch a number comes from; the oracle label.
- ``stats``: the paired t-test (scipy) and mean ± std.
- ``baselines``: chance, the majority class, the baseline trials.

Tables (pure polars):
- ``summary``: the best config against the references, with its gain over supervised-only.
- ``ladder``: the ablation ladder. ``searches``: the search's tables. ``dynamics_tables``: curves, thresholds,
  per-class accuracy, confusion.

Output:
- ``plots``: matplotlib figures (Agg) drawn from those tables, with their reference lines.
- ``formatting``: numbers as text, tables as Markdown. ``section``: a section's tables and figures, written.
- ``sections``: the four analyses as sections. ``report``: all of them and the index page.
- ``notebook``: what the marimo notebooks (``ablation.py``, ``search.py``, ``dynamics.py``) share.
"""
