"""Ray Tune and Optuna: the study command, its trials, the search, the ASHA journal, baselines, the lock."""
