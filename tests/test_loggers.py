"""train.loggers: TensorBoard event files and an MLflow file store of a smoke run, read back."""
import pytest

from conftest import run_cli, run_cli_here

pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed")


def test_smoke_run_writes_tensorboard_events_and_an_mlflow_run(tmp_path, monkeypatch):
    result = run_cli("recipe", "ce_resnet18", "--profile", "smoke", "--set", "train.epochs=2", "--set",
                     "train.loggers=[tensorboard, mlflow]", "--runs-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "ce_resnet18-smoke"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"loss/total", "loss/ce", "lr", "images_per_s", "val_top1/ensemble"} <= scalars
    exits = sorted(t for t in scalars if t.startswith("val_top1/exit_"))
    assert len(exits) >= 1 and [e.step for e in events.Scalars(exits[-1])] == [1, 2]
    assert "config/text_summary" in events.Tags()["tensors"]
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.tracking.MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
    runs = client.search_runs([client.get_experiment_by_name("ce_resnet18").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.params["train.epochs"] == "2" and runs[0].data.params["method.name"] == "ce"
    history = client.get_metric_history(runs[0].info.run_id, "loss/total")
    assert [m.step for m in history] == [1, 2]


def test_unknown_logger_is_refused_with_the_known_ones():
    result = run_cli_here("recipe", "ce_resnet18", "--profile", "smoke", "--set", "train.loggers=[wandb]")
    assert result.returncode == 2 and "train.loggers" in result.stderr and "tensorboard" in result.stderr
