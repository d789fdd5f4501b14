"""Task families: classification (built in), image generation and language models (optional extras)."""

from unlearnlab.families.base import TaskFamily, family_of, get_family, list_families, register_family

__all__ = ["TaskFamily", "family_of", "get_family", "list_families", "register_family"]

from unlearnlab.families import classification as _classification  # noqa: F401  (registers the family)
