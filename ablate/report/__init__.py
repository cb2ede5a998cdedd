"""A study's report: its tables, figures, sections and page (``python -m ablate.report results/NAME``)."""
