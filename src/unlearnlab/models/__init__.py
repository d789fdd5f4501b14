"""Model registry: ``create(name, task)`` infers input shape and class count."""

from unlearnlab.models import zoo as _zoo  # noqa: F401  (registers the built-in models)
from unlearnlab.models.registry import create, list_models, register_model

__all__ = ["create", "list_models", "register_model"]
