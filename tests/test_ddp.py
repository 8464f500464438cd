"""Data-parallel training with torchrun on CPU (gloo, 2 processes)."""
import json
import os
import subprocess
import sys

from conftest import ROOT


def _torchrun(*args, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def test_ranks_stay_in_sync_and_split_the_data(tmp_path):
    out = tmp_path / "ddp.json"
    result = _torchrun(str(ROOT / "tests" / "ddp_worker.py"), str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    ranks = report["ranks"]
    assert report["world_size"] == 2 and len(ranks) == 2
    assert ranks[0]["digest"] == ranks[1]["digest"], "DDP ranks ended with different weights"
    # 412 training images (512 - 100 val), 206 per rank, batch 32, drop_last -> 6 steps per rank
    assert [r["steps_per_epoch"] for r in ranks] == [6, 6]
    assert all(r["val_images"] == 100 for r in ranks)  # shards summed: every val image counted once
    assert all(r["changed"] for r in ranks) and ranks[0]["loss"] == ranks[1]["loss"]


def test_recipe_runs_under_torchrun(tmp_path):
    result = _torchrun("-m", "edgekd.recipe", "ce_resnet18", "--profile", "smoke", "--runs-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "ce_resnet18-smoke"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]  # written once, by rank 0
    assert json.loads((run / "results.json").read_text())["best"]["test"]["images"] == 256
    assert result.stdout.count("test top1 (last)") == 1  # the exit table, printed by rank 0 only
