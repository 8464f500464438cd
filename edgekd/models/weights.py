"""Reading a plain state_dict from a weight file and loading it into a model, with errors a user can act on.

`.safetensors` is read with safetensors; `.pth`/`.pt`/`.bin` with `torch.load(weights_only=True)`, which
refuses pickled code: a whole pickled module is refused with the reason and the one-line fix. Common
wrappers (`{"state_dict": ...}`, `{"model": ...}`, DataParallel's `module.` prefix) are unwrapped.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from edgekd.errors import EdgekdError

log = logging.getLogger("edgekd.models")

SAFETENSORS = (".safetensors",)
TORCH_FILES = (".pth", ".pt", ".bin")
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "state_dict_ema", "model_ema")
SHOWN_KEYS = 8


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a weight file, keyed as the module that wrote them named them."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise EdgekdError(f"weight file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise EdgekdError(f"{path} is not a readable safetensors file ({err})") from None
    if suffix not in TORCH_FILES:
        raise EdgekdError(f"weight file {path}: expected a .safetensors, .pth, .pt or .bin state_dict, got '{suffix or 'no suffix'}'")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError or EOFError depending on the damage
        text = str(err)
        if "weights_only" in text or "Unsupported global" in text:
            raise EdgekdError(
                f"{path} holds pickled Python objects (probably a whole model saved with torch.save(model)), which are "
                f"not loaded because unpickling can run arbitrary code. Save the weights instead: "
                f"torch.save(model.state_dict(), '{path.stem}.pth') or safetensors.torch.save_file(model.state_dict(), ...)"
            ) from None
        raise EdgekdError(f"{path} is not a readable PyTorch weight file ({text.splitlines()[0] if text else type(err).__name__})") from None
    return _unwrap(loaded, path)


def _unwrap(loaded: object, path: Path) -> dict[str, Tensor]:
    """The state_dict inside what torch.load returned."""
    if isinstance(loaded, Mapping):
        for key in WRAPPER_KEYS:
            if isinstance(loaded.get(key), Mapping):
                loaded = loaded[key]
                break
    if not isinstance(loaded, Mapping) or not loaded or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise EdgekdError(f"{path} does not hold a state_dict (a mapping of parameter names to tensors); "
                          f"save one with torch.save(model.state_dict(), ...)")
    state = dict(loaded)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOWN_KEYS])
    return shown + (f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else "")


def load_weights(model: nn.Module, state: Mapping[str, Tensor], *, classifier: str | Sequence[str], source: str) -> int:
    """Load `state` into `model` exactly. Only the classifier (`classifier` is its module path, or the paths
    of several heads) may differ, when the weights were trained for another class count: it keeps its fresh
    initialisation and the log says so. Any other missing, unexpected or misshapen key is an error that
    lists them. Returns the weights' class count where the classifier was replaced, else 0."""
    own = model.state_dict()
    prefixes = tuple(p + "." for p in ([classifier] if isinstance(classifier, str) else classifier))
    replaced = sorted(k for k in own if k.startswith(prefixes) and k in state and state[k].shape != own[k].shape)
    kept = {k: v for k, v in state.items() if k not in replaced}
    missing = sorted(k for k in own if k not in kept and k not in replaced)
    unexpected = sorted(k for k in kept if k not in own)
    misshapen = sorted(k for k in kept if k in own and kept[k].shape != own[k].shape)
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if misshapen:
        problems.append("keys with other shapes: " + _listing([f"{k} {tuple(kept[k].shape)} vs {tuple(own[k].shape)}" for k in misshapen]))
    if problems:
        raise EdgekdError(f"{source} does not fit this model: " + "; ".join(problems)
                          + ". Give weights of the same architecture (and the same model name)")
    model.load_state_dict(kept, strict=False)
    if not replaced:
        return 0
    weight = next((k for k in replaced if k.endswith("weight")), replaced[0])
    log.info("%s: its classifier '%s' has %d classes and the dataset %d; the classifier is replaced by a freshly "
             "initialised one", source, weight.rsplit(".", 1)[0], state[weight].shape[0], own[weight].shape[0])
    return int(state[weight].shape[0])
