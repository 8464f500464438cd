"""Scoring every exit of a bundle on a labelled split: what `calibrate`, `bench` and the demo share.

`load_split` reads the validation or test images (a dataset folder, or the validation sample the
bundle stores), `exit_logits` runs them through the `full` graph, and `score_exits` turns the logits
into each exit's probabilities, policy scores and correctness.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from edgekd.bundle import names
from edgekd.bundle.files import load_validation_sample
from edgekd.errors import BadInput, EdgekdError
from edgekd.runtime.folder import split_images
from edgekd.runtime.images import open_image, preprocess
from edgekd.runtime.model import EarlyExitModel


def stored_validation(model: EarlyExitModel) -> tuple[np.ndarray, np.ndarray]:
    """The validation sample the bundle carries (see `edgekd export`), normalized."""
    try:
        pixels, labels = load_validation_sample(model.bundle, model.manifest)
    except EdgekdError as err:
        raise BadInput(str(err)) from None
    return model.manifest.preprocess.normalize(pixels), labels


def load_split(model: EarlyExitModel, root: str | Path | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Preprocessed images and labels of `split` ('val' or 'test') under `root`, checked against the bundle's
    classes; without `root`, the bundle's own validation sample."""
    if root is None:
        if split != "val":
            raise BadInput(f"measuring on the {split} split needs --data with the dataset's folder")
        return stored_validation(model)
    root = Path(root)
    paths, labels, classes = split_images(root, split, model.manifest.validation)
    if sorted(classes) != sorted(model.classes):
        raise BadInput(f"the class folders under {root} ({', '.join(classes[:5])}...) are not the bundle's classes "
                       f"({', '.join(model.classes[:5])}...)")
    to_bundle = np.asarray([model.classes.index(name) for name in classes])  # folder order -> the bundle's label order
    images = np.stack([preprocess(open_image(p), model.manifest.preprocess) for p in paths])
    return images, to_bundle[labels]


def exit_logits(model: EarlyExitModel, images: np.ndarray, batch: int = 256) -> list[np.ndarray]:
    """Logits of every exit for every image, through the `full` graph."""
    session = model.session(names.FULL)
    chunks = [session.run(None, {names.IMAGE: images[i:i + batch]}) for i in range(0, len(images), batch)]
    return [np.concatenate([c[k] for c in chunks]) for k in range(model.num_exits)]


class ExitScores(NamedTuple):
    """Every exit's view of a labelled split, each array stacked over the exits first."""

    probs: np.ndarray  # (K, N, classes): each exit's own, temperature-scaled
    scores: np.ndarray  # (K, N): the policy's score
    correct: np.ndarray  # (K, N): the answer a sample leaving at exit k gets (the running ensemble's, where the policy has one) is right
    exit_correct: np.ndarray  # (K, N): each exit's own top-1 is right
    logits: np.ndarray  # (K, N, classes), as the graphs gave them

    @property
    def ensemble(self) -> np.ndarray:
        """Mean probabilities over the exits, (N, classes): the runtime's ensemble."""
        return self.probs.mean(axis=0)

    @property
    def ensemble_logits(self) -> np.ndarray:
        """Mean logits over the exits, (N, classes): BYOT's ensemble."""
        return self.logits.mean(axis=0)


def score_exits(model: EarlyExitModel, logits: list[np.ndarray], labels: np.ndarray, policy: str | None = None) -> ExitScores:
    """Probabilities, policy scores and correctness of every exit, with the model's temperatures and
    look-back options: the same walk down the exits as `predict(mode='early')`, on every sample."""
    trail = model.trail(policy)
    answers = [trail.step(z, k) for k, z in enumerate(logits)]
    probs = np.stack([model.scores(z, k, policy)[0] for k, z in enumerate(logits)])
    answered = np.stack([p.argmax(1) for p, _ in answers])
    return ExitScores(probs, np.stack([s for _, s in answers]), answered == labels[None], probs.argmax(2) == labels[None],
                      np.stack(logits))
