"""Analyses of a study's results folder (``trials.parquet``, ``epochs.parquet``, ``study.json``).

- ``tables``: pure polars functions (loading, the ablation ladder, the search summary, importance, dynamics).
- ``plots``: matplotlib figures (Agg backend) drawn from those tables.
- ``sections``: the tables and figures of each analysis, bundled, and written to a folder (md, csv, png);
  used by the marimo notebooks (``ablation.py``, ``search.py``, ``dynamics.py``) and ``python -m ablate.report``.
"""
