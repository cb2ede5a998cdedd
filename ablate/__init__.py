"""ablate: hyper-parameter searches and ablation studies of semi-supervised facial expression recognition."""

__version__ = "0.1.0"
