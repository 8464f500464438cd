"""Run under `torchrun --nproc_per_node 2 tests/ddp_worker.py OUT.json`: trains a small multi-exit
student with KD through the Trainer with DDP (gloo) and records, per rank, the weights' digest,
the steps per epoch and the validation images it evaluated."""
import hashlib
import json
import sys

import torch
import torch.distributed as dist

from edgekd.config import DataConfig, MethodConfig, TrainConfig
from edgekd.data import build_data
from edgekd.engine.distributed import init_distributed
from edgekd.engine.rng import seed_everything
from edgekd.engine.trainer import Trainer
from edgekd.methods import build_method
from edgekd.models import create_model

info = init_distributed("cpu")
seed_everything(0)
data = build_data(DataConfig(name="shapes", train_size=512, test_size=64, val_size=100, workers=0))
teacher = create_model("resnet20", num_classes=10, exits="last", width=0.5)
student = create_model("resnet20", num_classes=10, width=0.5)
method = build_method(MethodConfig(name="kd"), student, [teacher])
cfg = TrainConfig(epochs=2, batch_size=32, lr=0.05, schedule="constant", device="cpu")
trainer = Trainer(student, method, [teacher], data, cfg, run_dir=sys.argv[1] + ".run", info=info, callbacks=[], log=lambda m: None)
initial_head = student.heads[0][0].weight.detach().clone()
record = trainer.fit()
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in student.state_dict().values())).hexdigest()
mine = {"rank": info.rank, "digest": digest, "steps_per_epoch": trainer.steps_per_epoch,
        "val_images": record["val"]["images"], "loss": record["loss"],
        "changed": not torch.equal(student.heads[0][0].weight.detach(), initial_head)}
everyone = [None] * info.world_size
dist.all_gather_object(everyone, mine)
if info.is_main:
    with open(sys.argv[1], "w") as f:
        json.dump({"world_size": info.world_size, "ranks": everyone}, f)
del trainer  # release DDP's reducer before the process group goes away
dist.barrier()
dist.destroy_process_group()
