"""Training throughput of edgekd's Trainer vs a bare hand-written torch loop.

Same 4-exit ResNet18, same CE-at-every-exit loss, same batches from the same DataLoader over
pre-transformed in-memory images (so data loading is not what is measured), on CPU. Each round
runs one epoch of each, alternating which goes first; prints the median images/s of each and the
ratio engine / bare.

    python benchmarks/engine_overhead.py [--rounds 7] [--images 2048] [--width 0.25]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from edgekd.config import DataConfig, MethodConfig, TrainConfig
from edgekd.data import DataSplits, build_data
from edgekd.engine.distributed import EpochSampler
from edgekd.engine.trainer import Trainer
from edgekd.methods import build_method
from edgekd.models import create_model


def tensors(split, n: int) -> TensorDataset:
    images = torch.stack([split[i][0] for i in range(n)])
    return TensorDataset(images, torch.tensor(split.targets[:n]))


def bare_epoch(model: torch.nn.Module, train: TensorDataset, cfg: TrainConfig, epoch: int) -> float:
    """The loop a user would write by hand; returns images/s."""
    sampler = EpochSampler(len(train), shuffle=True, seed=cfg.seed)
    sampler.set_epoch(epoch)
    loader = DataLoader(train, cfg.batch_size, sampler=sampler, drop_last=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    model.train()
    seen, start = 0, time.perf_counter()
    for images, target in loader:
        loss = sum(F.cross_entropy(z, target) for z in model(images).logits)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(target)
    return seen / (time.perf_counter() - start)


def engine_epoch(model: torch.nn.Module, data: DataSplits, cfg: TrainConfig, run_dir: str) -> float:
    """One epoch through the Trainer with its default callbacks; returns its measured images/s."""
    method = build_method(MethodConfig(name="ce"), model, [])
    trainer = Trainer(model, method, [], data, cfg, run_dir=run_dir, workers=0, log=lambda m: None)
    return trainer.fit()["images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    raw = build_data(DataConfig(name="shapes", train_size=args.images + 64, test_size=64, val_size=64, augment="none"))
    train, val = tensors(raw.train, args.images), tensors(raw.val, 64)
    train.targets, val.targets = train.tensors[1].tolist(), val.tensors[1].tolist()
    data = DataSplits(train=train, val=val, test=val, classes=raw.classes, mean=raw.mean, std=raw.std, image_size=32)
    cfg = TrainConfig(epochs=1, batch_size=args.batch_size, lr=0.05, schedule="constant", device="cpu")
    model = lambda: create_model("resnet18", num_classes=10, width=args.width)  # noqa: E731

    bare, engine = [], []
    with tempfile.TemporaryDirectory() as tmp:
        bare_epoch(model(), train, cfg, 0)  # warm-up: allocator, thread pool
        engine_epoch(model(), data, cfg, f"{tmp}/warmup")
        for r in range(args.rounds):
            runs = [("bare", lambda: bare_epoch(model(), train, cfg, r)),
                    ("engine", lambda: engine_epoch(model(), data, cfg, f"{tmp}/round{r}"))]
            for name, fn in runs if r % 2 == 0 else runs[::-1]:
                (bare if name == "bare" else engine).append(fn())
    b, e = statistics.median(bare), statistics.median(engine)
    print(f"4-exit resnet18 (width {args.width}), batch {args.batch_size}, {args.images} images/epoch, "
          f"{torch.get_num_threads()} threads, {args.rounds} rounds")
    print(f"bare loop : median {b:8.1f} img/s  (runs: {', '.join(f'{x:.0f}' for x in bare)})")
    print(f"engine    : median {e:8.1f} img/s  (runs: {', '.join(f'{x:.0f}' for x in engine)})")
    print(f"ratio engine/bare: {e / b:.3f}")


if __name__ == "__main__":
    main()
