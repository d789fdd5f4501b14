"""unlearnlab: machine unlearning for PyTorch models."""

__version__ = "0.1.0"
