"""edgekd: distill multi-exit students, export them per exit, run them with early exits.

The training API (`create_model`, `list_models`, `load_recipe`) needs `edgekd[train]` and is
imported on first use, so `import edgekd.runtime` on a device never pulls in torch.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "create_model": "edgekd.models",
    "list_models": "edgekd.models",
    "load_recipe": "edgekd.recipe_loading",
    "list_recipes": "edgekd.config",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgekd' has no attribute '{name}'")


__all__ = ["__version__", *_LAZY]
