"""Lookup by name: every named choice of the suite (datasets, pipelines, explainers, profiles) is a dict
registry of name -> callable or class, read through ``lookup`` so that an unknown name always gives the same
error, ``unknown <kind> '<name>'; choose one of [...]``. (Models register themselves by decorator in
``nbhelpers.models.registry``, with the same message.)
"""

from __future__ import annotations

from typing import Mapping, TypeVar

__all__ = ["lookup"]

Entry = TypeVar("Entry")


def lookup(registry: Mapping[str, Entry], kind: str, name: str) -> Entry:
    """``registry[name]``; a ``KeyError`` naming the ``kind`` and the choices when ``name`` is not registered."""
    if name not in registry:
        raise KeyError(f"unknown {kind} {name!r}; choose one of {sorted(registry)}")
    return registry[name]
