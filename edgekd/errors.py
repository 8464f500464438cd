"""The one exception type for user mistakes, and `guarded`, which every entry point (the `edgekd`
command, `python -m edgekd.recipe`) runs its work in, so the message is printed instead of a traceback."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from edgekd.install_hints import ONNXRUNTIME_MISSING, TRAIN_EXTRA_HINT


class EdgekdError(Exception):
    """A problem the user can fix (bad config, missing data, corrupt file). The message says how."""


class BadInput(EdgekdError, ValueError):
    """Input the runtime cannot use (wrong dtype, shape or size; an unreadable or hostile image file).
    A ValueError, as numpy and onnxruntime users expect, and an EdgekdError for the CLI."""


def guarded(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a subcommand; a user mistake prints one clear line instead of a traceback."""
    try:
        return command(args)
    except EdgekdError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        if err.name == "onnxruntime":
            print(f"error: {ONNXRUNTIME_MISSING}", file=sys.stderr)
            return 2
        if err.name in ("torch", "torchvision", "yaml", "tqdm", "matplotlib", "timm", "safetensors"):
            print(f"error: {err.name} is not installed; {TRAIN_EXTRA_HINT}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("\ninterrupted; a recipe continues from its last checkpoint with --resume", file=sys.stderr)
        return 130
