"""The schema of a run and of a study: every Param declared once, the YAML and dotted-key helpers. No torch."""
