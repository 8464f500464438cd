"""Helpers for tests that train: per-epoch state snapshots and which parameters changed."""
import copy

import torch

from edgekd.engine.callbacks import Callback


class Snapshots(Callback):
    """Copies of the student's and the method's state after every epoch, for parameter-delta tests."""

    def __init__(self):
        self.states = []

    def on_epoch_end(self, trainer, record):
        self.states.append((copy.deepcopy(trainer.student.state_dict()), copy.deepcopy(trainer.method.state_dict())))


def changed_keys(before: dict, after: dict) -> set:
    """State-dict entries that differ (the BatchNorm step counter aside)."""
    return {k for k in after if not torch.equal(before[k], after[k]) and not k.endswith("num_batches_tracked")}
