"""The bundle contract (edgekd.bundle): the typed manifest and its migration from version 1, graph and
tensor names, the validation split rule, and the runtime reading bundles without torch or edgekd.export.
Torch-free (CI runs it in the Python 3.10 runtime-only venv too)."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT
from edgekd.bundle import SCHEMA_VERSION, names, read_manifest, write_manifest
from edgekd.bundle.manifest import migrate
from edgekd.bundle.preprocess import Preprocess
from edgekd.bundle.splits import validation_count, validation_split
from edgekd.errors import EdgekdError

V1_MANIFEST = Path(__file__).parent / "manifest_v1.json"  # written by the previous release, for an onnx-int8 bundle


def _bundle_with(folder: Path, manifest: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_a_version_1_manifest_reads_as_version_2(tmp_path):
    raw = json.loads(V1_MANIFEST.read_text())
    manifest = read_manifest(_bundle_with(tmp_path / "b", raw), verify=False)
    assert manifest.schema_version == SCHEMA_VERSION == 2
    assert manifest.precision_names == ["fp32", "int8-u8s8"]  # version 1's INT8 graphs were U8S8
    u8s8 = manifest.precisions["int8-u8s8"]
    assert u8s8.dir == "int8" and len(u8s8.files) == 9 and all(f.endswith(".onnx") for f in u8s8.files)
    assert u8s8.accuracy.top1 == raw["int8"]["val_accuracy"]["int8"]["top1"] and u8s8.calibration_images == 256
    assert manifest.calibration_sample.file == "calibration_images.npy" and manifest.calibration_sample.images == 256
    assert [e.index for e in manifest.exits] == [1, 2, 3, 4] and manifest.files == raw["files"]
    assert manifest.graph_path(tmp_path, "segment_2", "int8-u8s8") == tmp_path / "int8" / "segment_2.onnx"
    assert manifest.segment_input_shape(1) == (3, 32, 32) and manifest.segment_input_shape(2) == (16, 32, 32)
    written = write_manifest(tmp_path / "b", manifest.model_copy(update={"files": {}}))  # rewritten as version 2
    assert json.loads(written.read_text())["schema_version"] == 2 and read_manifest(tmp_path / "b").precisions


def test_a_bad_manifest_is_named_with_its_field(tmp_path):
    raw = json.loads(V1_MANIFEST.read_text())
    with pytest.raises(EdgekdError, match=r"not a valid bundle manifest \(exits.0.flops: .*export the bundle again"):
        read_manifest(_bundle_with(tmp_path / "a", {**raw, "exits": [{**raw["exits"][0], "flops": "many"}]}), verify=False)
    with pytest.raises(EdgekdError, match=r"\(thresolds: Extra inputs are not permitted"):
        read_manifest(_bundle_with(tmp_path / "b", {**migrate(raw), "thresolds": [0.5]}), verify=False)
    with pytest.raises(EdgekdError, match="schema version 3; this edgekd reads versions 1 to 2.*upgrade edgekd"):
        read_manifest(_bundle_with(tmp_path / "c", {**raw, "schema_version": 3}), verify=False)
    with pytest.raises(EdgekdError, match="holds a training run: export it"):
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "results.json").write_text("{}")
        read_manifest(tmp_path / "run")


def test_graph_and_tensor_names_round_trip():
    assert names.graphs(2) == ["segment_1", "segment_2", "prefix_1", "prefix_2", "full"]
    assert [names.segment_input(k) for k in (1, 2, 3)] == ["image", "feature_1", "feature_2"]
    assert names.segment_outputs(3) == ["feature_3", "logits_3"] and names.graph_file("prefix_2") == "prefix_2.onnx"
    for make in (names.segment, names.prefix, names.feature, names.logits):
        assert names.exit_of(make(7)) == 7
    assert names.exit_of("full") is None and names.exit_of("image") is None
    with pytest.raises(ValueError, match="not a bundle graph or tensor name"):
        names.exit_of("segment_x")


def test_the_validation_rule_carves_the_same_images_from_a_fraction_or_a_count():
    labels = np.repeat(np.arange(10), 50)
    assert validation_count(0.1, 500) == 50 == validation_count(50, 500)
    train, held = validation_split(labels, 0.1, seed=3)
    assert held == validation_split(labels, 50, seed=3)[1] and not set(train) & set(held) and len(train) == 450
    assert np.bincount(labels[held]).tolist() == [5] * 10


def test_preprocess_spec_round_trips_pixels():
    spec = Preprocess(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), crop_pct=0.875).spec(32)
    assert (spec.resize, spec.crop) == (36, 32)
    pixels = np.random.default_rng(0).integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    normalized = spec.normalize(pixels)
    assert normalized.dtype == np.float32 and np.array_equal(spec.to_pixels(normalized), pixels)


def test_the_runtime_imports_neither_torch_nor_the_exporter(runtime_fixture, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(runtime_fixture, bundle)
    code = ("import sys; sys.modules['torch'] = None\n"  # any `import torch` now raises ImportError
            "import numpy as np\n"
            "from edgekd.runtime import EarlyExitModel\n"
            "import edgekd.runtime.bench, edgekd.runtime.calibration, edgekd.runtime.evaluation, edgekd.runtime.timing, edgekd.doctor\n"
            "from edgekd.runtime.calibration import calibrate_bundle\n"
            f"calibrate_bundle(r'{bundle}', target_drop=5.0, log=lambda m: None)\n"
            f"for precision in ('fp32', 'fp16', 'int8'):\n"
            f"    EarlyExitModel(r'{bundle}', precision=precision).predict(np.zeros((2, 3, 32, 32), np.float32))\n"
            "loaded = sorted(m for m in sys.modules if m.startswith('edgekd.') or m == 'torch')\n"
            "print('\\n'.join(loaded))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    assert "edgekd.bundle.manifest" in loaded and "edgekd.runtime.backends.onnxruntime_cpu" in loaded
    assert not [m for m in loaded if m.startswith("edgekd.export")], loaded
    assert "torch" in loaded  # only as the blocker set above: importing it would have failed


def _edgekd_imports(folder: Path) -> dict[str, set[str]]:
    """For each module file under `folder`, the edgekd modules it imports (at any depth of the file)."""
    import ast

    found = {}
    for path in folder.rglob("*.py"):
        modules = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                modules.add(node.module)
            elif isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
        found[path.relative_to(folder.parent).as_posix()] = {m for m in modules if m.startswith("edgekd")}
    return found


def test_export_and_runtime_do_not_import_each_other_and_both_read_bundles_through_edgekd_bundle():
    package = ROOT / "edgekd"
    export, runtime = _edgekd_imports(package / "export"), _edgekd_imports(package / "runtime")
    assert not {f: m for f, m in export.items() if any(x.startswith("edgekd.runtime") for x in m)}
    assert not {f: m for f, m in runtime.items() if any(x.startswith("edgekd.export") for x in m)}
    bundle_readers = {f for f, m in {**export, **runtime}.items() if any(x.startswith("edgekd.bundle") for x in m)}
    assert {"export/exporter.py", "export/formats/onnx_fp32.py", "runtime/model.py", "runtime/evaluation.py"} <= bundle_readers
    # the contract stands on its own: it imports nothing of edgekd's but itself and the error type
    assert all(x.startswith("edgekd.bundle") or x == "edgekd.errors" for m in _edgekd_imports(package / "bundle").values() for x in m)
