"""A timm multi-exit student of each family trains, exports per-exit segments that pass parity, the ONNX
checker and TensorRT's op list, and runs in the early-exit runtime."""
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("timm", reason="timm models need the train extra (timm)")

from edgekd.config import DataConfig, MethodConfig, ModelConfig, RecipeConfig, TrainConfig  # noqa: E402
from edgekd.engine.run import train_and_evaluate  # noqa: E402
from edgekd.bundle import names, read_manifest  # noqa: E402
from edgekd.export.exporter import export  # noqa: E402
from edgekd.export.tensorrt_ops import unsupported_ops  # noqa: E402
from edgekd.runtime import EarlyExitModel  # noqa: E402
from edgekd.runtime.calibration import calibrate_bundle  # noqa: E402

FAMILIES = ["resnet18", "mobilenetv3_large_100", "efficientnet_b0", "convnext_atto", "regnetx_002"]


@pytest.mark.parametrize("name", FAMILIES)
def test_timm_student_exports_segments_with_parity_and_exits_early(name, tmp_path):
    config = RecipeConfig(
        name=name, data=DataConfig(name="shapes", image_size=32, train_size=48, test_size=24, val_size=24, workers=0),
        student=ModelConfig(name=f"timm/{name}", exits="all" if name == "convnext_atto" else [2, 3, 4, 5]),
        method=MethodConfig(name="ce"), train=TrainConfig(epochs=1, batch_size=16, lr=0.01, schedule="constant"),
    )
    run = tmp_path / "runs" / name
    train_and_evaluate(config, run, runs_dir=tmp_path / "runs", log=lambda m: None)
    bundle = export(run, "onnx", out=tmp_path / "bundle", log=lambda m: None)
    manifest = read_manifest(bundle)
    segments = [g for g in manifest.graphs if names.is_segment(g)]
    assert len(segments) == 4 == manifest.num_exits
    for graph, parity in manifest.parity.items():
        assert parity.batches == [1, 2, 7] and parity.argmax_equal, graph
        assert parity.max_abs_logit_diff < 1e-3, (graph, parity)
        assert unsupported_ops(manifest.graph_path(bundle, graph)) == set(), graph
    assert manifest.preprocess.interpolation == "bicubic"  # timm's pretrained config, not edgekd's default
    calibrate_bundle(bundle, target_drop=100.0, log=lambda m: None)  # any exit will do: the first one decides
    model = EarlyExitModel(bundle)
    images = [Image.fromarray(pixels.transpose(1, 2, 0)) for pixels in np.load(bundle / "validation.npz")["images"][:6]]
    early, every = model.predict(images, mode="early"), model.predict(images, mode="all")
    assert len(early.labels) == 6 and set(early.exits) <= {1, 2, 3, 4}
    for i, k in enumerate(early.exits):  # an early answer is exactly that exit's answer in the full run
        assert early.labels[i] == every.all_probs[k - 1][i].argmax()
        np.testing.assert_allclose(early.probs[i], every.all_probs[k - 1][i], atol=1e-5)
