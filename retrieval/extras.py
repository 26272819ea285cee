"""Optional parts of the install (the extras in pyproject.toml): a missing one is one clear line.

The runtime install serves, ingests and searches with the default numpy-only embedder. Other features
need an extra: `st` (sentence-transformers models and the cross-encoder: torch), `eval` (the offline
evaluation: ranx, matplotlib, scikit-learn, ragas). Their packages are imported only where used.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable
from types import ModuleType


class MissingExtraError(ImportError):
    """A package of an optional extra is not installed; the message names the extra and how to add it."""


def install_hint(extra: str) -> str:
    """Return how to install `extra` (its lock, or the extra by name)."""
    return f"pip install -r requirements/{extra}.lock, or pip install 'invekto-knowledge[{extra}]'"


def _error(extra: str, purpose: str, missing: Iterable[str]) -> MissingExtraError:
    return MissingExtraError(
        f"{purpose} needs the '{extra}' extra ({', '.join(missing)} not installed): {install_hint(extra)}"
    )


def require_module(module: str, extra: str, purpose: str) -> ModuleType:
    """Import `module`, or raise MissingExtraError if it (or a package it needs) is not installed."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise _error(extra, purpose, [exc.name or module]) from exc


def require_installed(modules: Iterable[str], extra: str, purpose: str) -> None:
    """Raise MissingExtraError unless every top-level module in `modules` is installed (nothing imported)."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise _error(extra, purpose, missing)
