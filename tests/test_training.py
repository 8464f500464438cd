"""The training loop end to end: metrics, divergence, checkpoints, resume exactness."""
import json
import os
import signal
import subprocess
import sys
import time

import torch

from conftest import ROOT, run_cli, run_cli_here
from edgekd.engine.checkpoint import load_checkpoint
from edgekd.engine.model_io import load_model
from edgekd.models import create_model

SMOKE = ["recipe", "ce_resnet18", "--profile", "smoke"]


def test_run_writes_metrics_checkpoints_and_results(tmp_path):
    result = run_cli_here(*SMOKE, "--set", "train.epochs=2", "--runs-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    run = tmp_path / "ce_resnet18-smoke"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        assert set(r["loss_terms"]) == {"ce"} and r["images_per_s"] > 0 and r["lr"] > 0
        assert len(r["val"]["top1"]) == len(r["val"]["top5"]) == 4
        assert all(t5 >= t1 for t1, t5 in zip(r["val"]["top1"], r["val"]["top5"]))
    results = json.loads((run / "results.json").read_text())
    assert len(results["exits"]) == 4 and len(results["best"]["test"]["top1"]) == 4
    assert "test top1 (last)" in result.stdout and "ens (logits)" in result.stdout  # the exit table, both ensembles
    assert {"ensemble_top1", "ensemble_logit_top1"} <= set(results["best"]["test"])
    assert (run / "config.yaml").read_text().startswith("name: ce_resnet18")
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert "optimizer" not in best and best["model_spec"]["name"] == "resnet18"
    # a second run into the same folder is refused, nothing is lost
    again = run_cli_here(*SMOKE, "--runs-dir", str(tmp_path))
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr
    assert (run / "results.json").exists()


def test_a_head_per_early_exit_trains_and_rebuilds_from_its_checkpoint(tmp_path):
    heads = ["strided", "bottleneck", "linear"]
    result = run_cli_here(*SMOKE, "--set", f"student.head=[{','.join(heads)}]", "--runs-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    checkpoint = tmp_path / "ce_resnet18-smoke" / "checkpoints" / "best.pt"
    model, state = load_model(checkpoint)
    assert state["model_spec"]["head"] == heads
    reference = {kind: create_model("resnet18", num_classes=model.num_classes, head=kind, width=state["model_spec"]["width"])
                 for kind in heads}
    for k, kind in enumerate(heads):
        assert [p.shape for p in model.heads[k].parameters()] == [p.shape for p in reference[kind].heads[k].parameters()]


def test_divergence_stops_with_a_clear_message_and_no_bad_checkpoint(tmp_path):
    result = run_cli_here(*SMOKE, "--set", "train.lr=1e12", "--set", "train.momentum=0", "--runs-dir", str(tmp_path))
    assert result.returncode == 2
    assert "loss became non-finite" in result.stderr and "train.lr" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "ce_resnet18-smoke" / "checkpoints" / "last.pt").exists()


def _model_state(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]


def test_resume_after_a_kill_is_bit_identical(tmp_path):
    args = [*SMOKE, "--set", "train.epochs=4", "--set", "data.train_size=1280"]
    straight = run_cli(*args, "--runs-dir", str(tmp_path / "a"))
    assert straight.returncode == 0, straight.stderr

    runs_b = tmp_path / "b"
    last = runs_b / "ce_resnet18-smoke" / "checkpoints" / "last.pt"
    proc = subprocess.Popen([sys.executable, "-m", "edgekd", *args, "--runs-dir", str(runs_b)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # mid-way: the first checkpoint just landed, epoch 2 is running
    proc.wait()
    interrupted_at = load_checkpoint(last)["epoch"]
    assert interrupted_at < 4 and not (runs_b / "ce_resnet18-smoke" / "results.json").exists()

    resumed = run_cli(*args, "--runs-dir", str(runs_b), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout
    a, b = _model_state(tmp_path / "a" / "ce_resnet18-smoke"), _model_state(runs_b / "ce_resnet18-smoke")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    metrics = lambda root: [json.loads(line) for line in (root / "ce_resnet18-smoke" / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    ma, mb = metrics(tmp_path / "a"), metrics(runs_b)
    assert [m["epoch"] for m in mb] == [1, 2, 3, 4]
    assert [m["loss"] for m in ma] == [m["loss"] for m in mb]


def test_resume_with_a_changed_recipe_is_refused(tmp_path):
    assert run_cli_here(*SMOKE, "--set", "train.epochs=1", "--runs-dir", str(tmp_path)).returncode == 0
    changed = run_cli_here(*SMOKE, "--set", "train.epochs=1", "--set", "train.lr=0.2", "--runs-dir", str(tmp_path), "--resume")
    assert changed.returncode == 2 and "differs" in changed.stderr and "train" in changed.stderr
