"""The INT8 part of an `onnx-int8` bundle: calibration images from the run's training split, the
quantized graphs, and per-exit accuracy of INT8 against FP32 on the validation split."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from edgekd.export.calibration import save_calibration_images
from edgekd.export.onnx_graphs import GraphSpec
from edgekd.export.parity import cpu_session
from edgekd.export.quantize import quantize_graphs


def _stack(dataset: Any, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = zip(*(dataset[i] for i in indices))
    return torch.stack(list(images)).numpy(), np.asarray(labels)


def full_graph_accuracy(path: Path, images: np.ndarray, labels: np.ndarray, batch: int = 256) -> dict[str, Any]:
    """Top-1 (%) of every exit and of the mean-softmax ensemble of the `full` graph at `path`."""
    session = cpu_session(path)
    names = [o.name for o in session.get_outputs()]
    hits = np.zeros(len(names) + 1)
    for start in range(0, len(images), batch):
        logits = session.run(names, {"image": images[start:start + batch]})
        y = labels[start:start + batch]
        probs = [np.exp(z - z.max(1, keepdims=True)) for z in logits]
        probs = [p / p.sum(1, keepdims=True) for p in probs]
        for j, p in enumerate([*probs, np.mean(probs, axis=0)]):
            hits[j] += (p.argmax(1) == y).sum()
    acc = (100.0 * hits / len(images)).round(3).tolist()
    return {"top1": acc[:-1], "ensemble_top1": acc[-1], "images": len(images)}


def add_int8(folder: Path, specs: list[GraphSpec], data: Any, calib_images: int, subdir: str,
             log: Callable[[str], None]) -> dict[str, Any]:
    """Quantize every graph into `folder/subdir`, calibrated on the training images of `data` (the run's
    DataSplits), and measure INT8 vs FP32 on its validation split."""
    from edgekd.data.splits import TransformedSubset
    from edgekd.data.transforms import eval_transform

    calib = TransformedSubset(data.train.base, data.train.indices, eval_transform(data.image_size, data.preprocess))
    order = np.random.default_rng(0).permutation(len(calib))[:calib_images].tolist()
    images, _ = _stack(calib, order)
    log(f"INT8: calibrating {len(images)} training images per graph (QDQ, per-channel)")
    files = quantize_graphs(folder, specs, images, folder / subdir)
    files.append(save_calibration_images(folder, images, data.mean, data.std))
    val_images, val_labels = _stack(data.val, list(range(len(data.val))))
    fp32 = full_graph_accuracy(folder / "full.onnx", val_images, val_labels)
    int8 = full_graph_accuracy(folder / subdir / "full.onnx", val_images, val_labels)
    for k, (a, b) in enumerate(zip(fp32["top1"], int8["top1"]), start=1):
        log(f"  exit {k}: val top-1 FP32 {a:.2f}  INT8 {b:.2f}  ({b - a:+.2f})")
    log(f"  ensemble: FP32 {fp32['ensemble_top1']:.2f}  INT8 {int8['ensemble_top1']:.2f}")
    return {"dir": subdir, "files": files, "calibration_images": len(images), "quantization": "static QDQ, per-channel, U8S8",
            "val_accuracy": {"fp32": fp32, "int8": int8}}
