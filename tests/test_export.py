"""Export: a recipe's run -> ONNX (+ FP16, + INT8) bundle with parity, manifest, hashes, TensorRT-parsable
ops, and nothing half-written when something goes wrong."""
import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from conftest import run_cli, run_cli_here
from edgekd.errors import EdgekdError
from edgekd.export import exporter
from edgekd.bundle import names as graph_names
from edgekd.bundle import read_manifest
from edgekd.export.onnx_graphs import GraphSpec, export_graph, graph_specs
from edgekd.export.tensorrt_ops import TENSORRT_ONNX_OPS, unsupported_ops
from edgekd.models import create_model


@pytest.fixture(scope="module")
def run_and_bundle(tmp_path_factory):
    """oto_resnet18's smoke profile, whose `export:` section writes an onnx-int8 bundle."""
    root = tmp_path_factory.mktemp("export")
    result = run_cli_here("recipe", "oto_resnet18", "--profile", "smoke", "--runs-dir", str(root / "runs"), "--export-dir", str(root / "export"))
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "runs" / "oto_resnet18-smoke", root / "export" / "oto_resnet18-smoke"


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_bundle_holds_every_graph_with_manifest_and_parity(run_and_bundle):
    _, bundle = run_and_bundle
    manifest = read_manifest(bundle)
    names = [f"segment_{k}" for k in range(1, 5)] + [f"prefix_{k}" for k in range(1, 5)] + ["full"]
    assert list(manifest.graphs) == names == graph_names.graphs(4)
    for name in names:
        assert (bundle / f"{name}.onnx").is_file() and (bundle / "int8" / f"{name}.onnx").is_file()
        parity = manifest.parity[name]
        assert parity.batches == [1, 2, 7] and parity.max_abs_logit_diff <= 1e-4 and parity.argmax_equal
    assert manifest.input.shape == (3, 32, 32) and len(manifest.classes) == 10 and manifest.schema_version == 2
    assert len(manifest.preprocess.mean) == 3 and manifest.opset == 17 and manifest.precision_names == ["fp32", "int8"]
    for info in manifest.exits:
        assert info.params > 0 and info.flops > 0 and 0 <= info.val_top1 <= 100
    assert set(manifest.files) >= {f"{n}.onnx" for n in names} | {"calibration_images.npy", "validation.npz"}
    assert manifest.validation_sample.images == 128  # the smoke profile's whole validation split
    assert len(manifest.examples) == 8 and all((bundle / e.file).is_file() for e in manifest.examples)
    embedded = json.loads(onnx.load(str(bundle / "segment_2.onnx")).metadata_props[0].value)
    assert embedded == manifest.to_json_dict(with_files=False)


def test_chained_segments_equal_the_full_graph_at_any_batch(run_and_bundle):
    _, bundle = run_and_bundle
    full = _session(bundle / "full.onnx")
    segments = [_session(bundle / f"segment_{k}.onnx") for k in range(1, 5)]
    for batch in (3, 5):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
        expected = full.run(None, {"image": x})
        feature = x
        for k, session in enumerate(segments):
            feature, logits = session.run(None, {session.get_inputs()[0].name: feature})
            np.testing.assert_allclose(logits, expected[k], atol=1e-5)
            prefix = _session(bundle / f"prefix_{k + 1}.onnx").run(None, {"image": x})[0]
            np.testing.assert_allclose(prefix, expected[k], atol=1e-5)


def _quantization(path):
    """(zero points of every QuantizeLinear, scale sizes of the weights' and the activations' DequantizeLinear)."""
    graph = onnx.load(str(path)).graph
    init = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    zero_points = [init[n.input[2]] for n in graph.node if n.op_type == "QuantizeLinear"]
    weights = [init[n.input[1]].size for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in init
               and init[n.input[0]].ndim == 4]
    activations = [init[n.input[1]].size for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] not in init]
    return zero_points, weights, activations


def test_int8_graphs_are_symmetric_per_channel_and_their_accuracy_recorded(run_and_bundle):
    _, bundle = run_and_bundle
    manifest = read_manifest(bundle)
    for name in manifest.graphs:
        graph = onnx.load(str(bundle / "int8" / f"{name}.onnx"))
        # only the opsets its nodes use: older onnxruntime builds (JetPack's among them) refuse unknown ones
        assert {o.domain for o in graph.opset_import} - {"", "ai.onnx"} <= {n.domain for n in graph.graph.node}
        zero_points, weights, activations = _quantization(bundle / "int8" / f"{name}.onnx")
        # the explicit quantization TensorRT reads: int8 zero points of 0, a scale per output channel of every
        # convolution's weights, one scale per activation tensor
        assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points), name
        assert weights and min(weights) > 1 and activations and set(activations) == {1}, name
    int8 = manifest.precisions["int8"]
    assert "symmetric" in int8.method and int8.dir == "int8" and int8.calibration_images == 32 and not int8.fp32_nodes
    assert len(int8.simulated_accuracy.top1) == 4 and int8.simulated_accuracy.images == 128
    assert len(int8.fp32_accuracy.top1) == len(int8.accuracy.top1) == len(int8.agreement) == 4
    assert int8.fp32_accuracy.images == 128 and all(0 <= a.argmax_agreement <= 1 for a in int8.agreement)
    calib = np.load(bundle / "calibration_images.npy")
    assert calib.dtype == np.uint8 and calib.shape == (32, 3, 32, 32) and manifest.calibration_sample.images == 32


def test_u8s8_and_fp16_graphs_go_into_one_bundle_with_parity_per_exit(run_and_bundle, tmp_path):
    run_dir, _ = run_and_bundle
    out = exporter.export(run_dir, "onnx-fp16,onnx-int8", out=tmp_path / "b", int8_scheme="u8s8", calib_images=16,
                          log=lambda m: None)
    manifest = read_manifest(out)
    assert manifest.precision_names == ["fp32", "fp16", "int8-u8s8"] and manifest.format == "onnx-fp16,onnx-int8"
    zero_points, _, _ = _quantization(out / "int8-u8s8" / "full.onnx")
    assert all(z.dtype == np.uint8 for z in zero_points) and any(z.any() for z in zero_points)
    fp16 = manifest.precisions["fp16"]
    for name in manifest.graphs:
        graph = onnx.load(str(out / "fp16" / f"{name}.onnx")).graph
        assert {t.type.tensor_type.elem_type for t in [*graph.input, *graph.output]} == {onnx.TensorProto.FLOAT}
        assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.initializer), name
    assert len(fp16.agreement) == 4 and all(a.max_abs_logit_diff < 0.05 and a.argmax_agreement >= 0.98 for a in fp16.agreement)
    assert all(abs(a - b) <= 2.0 for a, b in zip(fp16.accuracy.top1, fp16.fp32_accuracy.top1))
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    for a, b in zip(_session(out / "full.onnx").run(None, {"image": x}), _session(out / "fp16" / "full.onnx").run(None, {"image": x})):
        assert b.dtype == np.float32 and np.abs(a - b).max() < 0.05


def test_max_int8_drop_keeps_sensitive_nodes_in_fp32_or_refuses_naming_the_exit(run_and_bundle, tmp_path, monkeypatch):
    from edgekd.export.formats import onnx_int8

    run_dir, _ = run_and_bundle
    real = onnx_int8.compare
    calls = []

    def lossy_until_heads_kept(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append(args[1])
        if len(calls) == 1:  # the first attempt, everything quantized: exit 2 of the symmetric graphs loses 9 points
            result.simulated.top1[1] -= 9.0
        return result

    monkeypatch.setattr(onnx_int8, "compare", lossy_until_heads_kept)
    lines = []
    out = exporter.export(run_dir, "onnx-int8", out=tmp_path / "b", calib_images=16, max_int8_drop=5.0, log=lines.append)
    int8 = read_manifest(out).precisions["int8"]
    assert len(calls) == 2 and any("exit 2 loses more than 5.0 points" in line for line in lines)
    kept = int8.fp32_nodes["full"]
    assert kept and all("head" in node for node in kept)
    graph = onnx.load(str(out / "int8" / "full.onnx")).graph
    float_weights = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    head_convs = [n for n in graph.node if n.name in kept and n.op_type == "Conv"]
    assert head_convs and all(n.input[1] in float_weights for n in head_convs)  # FP32 weights, not int8 ones

    def always_lossy(*args, **kwargs):
        result = real(*args, **kwargs)
        return result._replace(simulated=result.simulated.model_copy(update={"top1": [t - 9.0 for t in result.simulated.top1]}))

    monkeypatch.setattr(onnx_int8, "compare", always_lossy)
    monkeypatch.setattr(onnx_int8, "RULES", onnx_int8.RULES[:1])  # one step (the heads) before refusing: half the rounds
    monkeypatch.setattr(onnx_int8, "SENSITIVE_STEPS", onnx_int8.SENSITIVE_STEPS[:1])
    with pytest.raises(EdgekdError, match=r"INT8 exit \d loses \d+\.\d\d points .*--max-int8-drop 5.0\) even with the exit heads kept") as refused:
        exporter.export(run_dir, "onnx-int8", out=tmp_path / "c", calib_images=16, max_int8_drop=5.0, log=lambda m: None)
    # the 9 simulated points on top of the graph's own (small, calibration-dependent) INT8 loss
    assert float(str(refused.value).split(" loses ")[1].split(" points")[0]) >= 9.0
    assert not (tmp_path / "c").exists() and not (tmp_path / ".c.partial").exists()


def test_every_exported_op_is_one_tensorrt_parses(run_and_bundle, tmp_path):
    _, bundle = run_and_bundle
    for name in read_manifest(bundle).graphs:
        assert not unsupported_ops(bundle / f"{name}.onnx"), name
    for arch in ("vgg8", "mobilenetv2", "wrn_16_2", "resnet20", "resnet50"):
        net = create_model(arch, num_classes=10, width=0.25).eval()
        for spec in graph_specs(net):
            if spec.name.startswith("segment"):
                export_graph(spec, tmp_path / spec.file, 17, torch.randn(2, *spec.input_shape))
                ops = {n.op_type for n in onnx.load(str(tmp_path / spec.file)).graph.node}
                assert ops <= TENSORRT_ONNX_OPS, (arch, spec.name, ops - TENSORRT_ONNX_OPS)


def test_altered_or_truncated_files_are_refused_by_name(run_and_bundle, tmp_path):
    _, bundle = run_and_bundle
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    data = (copy / "segment_3.onnx").read_bytes()
    (copy / "segment_3.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(EdgekdError, match="segment_3.onnx does not match its sha256"):
        read_manifest(copy)
    (copy / "segment_3.onnx").write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    with pytest.raises(EdgekdError, match="segment_3.onnx"):
        read_manifest(copy)
    (copy / "segment_3.onnx").unlink()
    with pytest.raises(EdgekdError, match="segment_3.onnx is missing"):
        read_manifest(copy)


def test_failed_export_leaves_nothing_and_keeps_the_old_bundle(run_and_bundle, tmp_path, monkeypatch):
    run_dir, _ = run_and_bundle
    out = tmp_path / "b"
    exporter.export(run_dir, "onnx", out=out, log=lambda m: None)
    before = read_manifest(out).files

    def broken(*args, **kwargs):
        raise EdgekdError("parity failed")

    from edgekd.export.formats import onnx_fp32

    monkeypatch.setattr(onnx_fp32, "check_parity", broken)
    with pytest.raises(EdgekdError, match="parity failed"):
        exporter.export(run_dir, "onnx", out=out, overwrite=True, log=lambda m: None)
    assert read_manifest(out).files == before  # the old bundle is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no partial folder left behind
    with pytest.raises(EdgekdError, match="already holds a bundle"):
        exporter.export(run_dir, "onnx", out=out, log=lambda m: None)


def test_data_dependent_control_flow_fails_the_export(tmp_path):
    class Branchy(nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x

    spec = GraphSpec("segment_1", Branchy(), (3, 4, 4), ["image"], ["logits_1"])
    with pytest.raises(EdgekdError, match="input-dependent"):
        export_graph(spec, tmp_path / "g.onnx", 17, torch.ones(2, 3, 4, 4))


def test_cli_mistakes_get_one_line(run_and_bundle, tmp_path):
    run_dir, bundle = run_and_bundle
    for args, expected in ((["--format", "onnx-in8"], "did you mean 'onnx-int8'"), (["--max-bach", "8"], "did you mean --max-batch"),
                           (["--format", "onnx", "--max-batch", "8"], "does not apply to format 'onnx'"),
                           (["--format", "onnx-fp16,onnx-in8"], "did you mean 'onnx-int8'"),
                           (["--format", "onnx-int8", "--max-int8-drop", "-1"], "at least 0")):
        result = run_cli("export", str(run_dir), "--out", str(tmp_path / "x"), *args)
        assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr, result.stderr
    not_a_run = run_cli("export", str(tmp_path))
    assert not_a_run.returncode == 2 and "not a finished edgekd run" in not_a_run.stderr
    again = run_cli("export", str(bundle), "--format", "onnx")
    assert again.returncode == 2 and "already an exported bundle" in again.stderr
    assert not (tmp_path / "x").exists()


def test_tensorrt_says_what_is_missing(run_and_bundle):
    _, bundle = run_and_bundle
    try:
        import tensorrt  # noqa: F401
        has_trt = True
    except ImportError:
        has_trt = False
    if has_trt and torch.cuda.is_available():
        pytest.skip("TensorRT and a GPU are present: the engine build test covers this machine")
    result = run_cli("export", str(bundle), "--format", "tensorrt")
    assert result.returncode == 2
    assert ("TensorRT is not installed" in result.stderr) if not has_trt else ("no CUDA GPU is visible" in result.stderr)


def test_recipe_refuses_to_export_over_a_bundle_before_training(run_and_bundle, tmp_path):
    _, bundle = run_and_bundle
    result = run_cli_here("recipe", "oto_resnet18", "--profile", "smoke", "--runs-dir", str(tmp_path / "runs"),
                     "--export-dir", str(bundle.parent))
    assert result.returncode == 2 and "already holds a bundle" in result.stderr
    assert not (tmp_path / "runs").exists()  # refused before any training
