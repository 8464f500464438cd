"""The early-exit runtime on the tiny test bundle (tests/runtime_fixture.py): exits and compaction, modes,
backends and precisions, calibration and bench (that it imports neither torch nor the exporter: test_bundle). Runs without torch (CI runs it in a Python 3.10 runtime-only venv)."""
import itertools
import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest

from conftest import SHAPES_IMAGES, TINY_BUNDLE, run_cli
from edgekd.errors import BadInput, EdgekdError
from edgekd.runtime import EarlyExitModel
from edgekd.runtime.evaluation import exit_logits, load_split, score_exits
from edgekd.runtime.sessions import session_options
from edgekd.runtime.thresholds import NEVER, assign_exits

BUNDLE, IMAGES = TINY_BUNDLE, SHAPES_IMAGES
pytestmark = pytest.mark.usefixtures("runtime_fixture")


@pytest.fixture
def bundle(tmp_path):
    """A private copy, since calibration writes into the manifest."""
    return shutil.copytree(BUNDLE, tmp_path / "bundle")


@pytest.fixture(scope="module")
def model():
    return EarlyExitModel(BUNDLE)


@pytest.fixture(scope="module")
def test_images(model):
    return load_split(model, IMAGES, "test")


def test_all_mode_matches_full_graph_and_the_ensemble(model, test_images):
    images, labels = test_images
    logits = exit_logits(model, images)
    result = model.predict(images[:20], mode="all")
    for k in range(model.num_exits):
        np.testing.assert_allclose(result.all_probs[k].argmax(1), logits[k][:20].argmax(1))
    np.testing.assert_array_equal(result.labels, np.mean(result.all_probs, axis=0).argmax(1))  # the label: mean softmax
    np.testing.assert_allclose(result.ensemble_logits, np.mean([z[:20] for z in logits], axis=0), rtol=1e-5, atol=1e-5)


def test_thresholds_route_samples_and_compaction_keeps_their_order(model, test_images):
    images, _ = test_images
    logits = exit_logits(model, images)
    everyone_first = model.predict(images, mode="early", thresholds=[0.0] * 3)
    assert (everyone_first.exits == 1).all() and list(everyone_first.timings) == ["segment_1", "total"]
    np.testing.assert_array_equal(everyone_first.labels, logits[0].argmax(1))
    nobody_early = model.predict(images, mode="early", thresholds=[NEVER] * 3)
    assert (nobody_early.exits == 4).all()
    np.testing.assert_array_equal(nobody_early.labels, logits[3].argmax(1))
    # Mixed: each sample's label is the argmax of the exit it took, whatever happened to the others.
    mixed = model.predict(images, mode="early", thresholds=[0.5, 0.4, 0.3])
    assert len(set(mixed.exits.tolist())) > 1
    for i, k in enumerate(mixed.exits):
        assert mixed.labels[i] == logits[k - 1][i].argmax()
        assert not np.isnan(mixed.exit_scores[i, :k]).any() and np.isnan(mixed.exit_scores[i, k:]).all()
        assert mixed.confidences[i] == pytest.approx(mixed.probs[i].max())
    for i in range(0, len(images), 17):  # alone or in a batch, a sample leaves at the same exit
        alone = model.predict(images[i:i + 1], mode="early", thresholds=[0.5, 0.4, 0.3])
        assert alone.exits[0] == mixed.exits[i] and alone.labels[0] == mixed.labels[i]


def test_fixed_exit_and_auto_modes(model, test_images):
    images, _ = test_images
    logits = exit_logits(model, images[:10])
    second = model.predict(images[:10], mode="exit", exit=2)
    assert (second.exits == 2).all()
    np.testing.assert_array_equal(second.labels, logits[1].argmax(1))
    auto = model.predict(images[:10])  # uncalibrated: the final exit
    assert (auto.exits == 4).all()
    with pytest.raises(BadInput, match="no calibrated thresholds"):
        model.predict(images[:1], mode="early")
    with pytest.raises(ValueError, match="exit=1..4"):
        model.predict(images[:1], mode="exit", exit=7)


def test_policies_and_int8(test_images):
    images, _ = test_images
    for name in ("max_prob", "entropy", "margin"):
        result = EarlyExitModel(BUNDLE).predict(images[:8], mode="early", thresholds=[0.6] * 3, policy=name)
        assert ((0 <= result.confidences) & (result.confidences <= 1)).all()
    with pytest.raises(EdgekdError, match="unknown exit policy"):
        EarlyExitModel(BUNDLE).predict(images[:1], mode="early", thresholds=[0.5] * 3, policy="maxprob")
    int8 = EarlyExitModel(BUNDLE, precision="int8")
    fp32 = EarlyExitModel(BUNDLE)
    for p32, p8 in zip(fp32.predict(images, mode="all").all_probs, int8.predict(images, mode="all").all_probs):
        # The tiny model's flat outputs make argmax agreement a poor measure. Symmetric INT8 activations leave
        # the negative half of their range unused after a ReLU, so they are coarser than U8S8's (< 0.02 there).
        assert np.abs(p32 - p8).mean() < 0.04


def test_sessions_with_pools_of_their_own_spin_only_while_a_run_lasts():
    options = session_options(3)
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (3, 1)
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"


def test_a_backend_or_precision_the_bundle_or_machine_lacks_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="no TensorRT engines.*--format tensorrt"):
        EarlyExitModel(BUNDLE, backend="tensorrt-engines")
    with pytest.raises(ValueError, match="no int8-u8s8 graphs.*--format onnx-int8 --int8-scheme u8s8"):
        EarlyExitModel(BUNDLE, precision="int8-u8s8")
    with pytest.raises(ValueError, match="no bf16 graphs .*holds fp32, fp16, int8.*precisions: fp32, fp16, int8"):
        EarlyExitModel(BUNDLE, precision="bf16")
    with pytest.raises(ValueError, match="unknown backend 'tensort'; did you mean 'tensorrt'"):
        EarlyExitModel(BUNDLE, backend="tensort")


def test_backends_are_checked_against_this_onnxruntime_and_take_provider_options():
    for backend, provider in (("cuda", "CUDAExecutionProvider"), ("tensorrt", "TensorrtExecutionProvider")):
        if provider not in ort.get_available_providers():
            with pytest.raises(ValueError, match=f"{provider} is not available here.*edgekd doctor"):
                EarlyExitModel(BUNDLE, backend=backend)
    assert EarlyExitModel(BUNDLE, threads=1).providers == ["CPUExecutionProvider"]
    tuned = EarlyExitModel(BUNDLE, threads=1, provider_options={"arena_extend_strategy": "kSameAsRequested"})
    assert tuned.providers == [("CPUExecutionProvider", {"arena_extend_strategy": "kSameAsRequested"})]
    assert tuned.predict(np.zeros((1, *tuned.manifest.input.shape), np.float32)).labels.shape == (1,)


def test_calibrate_meets_its_target_on_validation_and_writes_the_manifest(bundle):
    result = run_cli("calibrate", str(bundle), "--data", str(IMAGES), "--target-drop", "1.0")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((bundle / "manifest.json").read_text())
    policy = manifest["policy"]
    assert len(manifest["thresholds"]) == 3 and policy["val_images"] == 60
    assert policy["val_accuracy"] >= policy["val_final_exit_accuracy"] - 1.0
    assert policy["val_mean_cost"] <= 1.0 + 1e-9 or policy["val_exit_counts"][-1] == 60
    model = EarlyExitModel(bundle)  # hashes still verify after the manifest was rewritten
    assert model.thresholds == manifest["thresholds"]
    budget = run_cli("calibrate", str(bundle), "--data", str(IMAGES), "--budget", "0.6", "--policy", "entropy", "--temperature")
    assert budget.returncode == 0, budget.stderr
    policy = json.loads((bundle / "manifest.json").read_text())["policy"]
    assert policy["val_mean_cost"] <= 0.6 and policy["name"] == "entropy" and len(policy["temperatures"]) == 4


def test_calibrate_with_a_confidence_level_certifies_on_images_the_search_never_saw(bundle):
    before = (bundle / "manifest.json").read_bytes()
    refused = run_cli("calibrate", str(bundle), "--data", str(IMAGES), "--target-drop", "1", "--confidence", "0.9")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert "cannot certify a drop of at most 1 points at confidence 0.9 on 29 certify images" in refused.stderr  # 31 search
    assert "validation images would (half to search, half to certify)" in refused.stderr
    assert (bundle / "manifest.json").read_bytes() == before  # nothing written
    result = run_cli("calibrate", str(bundle), "--data", str(IMAGES), "--target-drop", "30", "--confidence", "0.9")
    assert result.returncode == 0, result.stderr
    policy = json.loads((bundle / "manifest.json").read_text())["policy"]
    assert policy["confidence"] == 0.9 and policy["search_images"] == 31 and policy["certify_images"] == policy["val_images"] == 29
    assert policy["certify_p_value"] <= 0.1 and policy["points_tested"] >= 1 and policy["certify_test"] == "exact"
    assert "certified: drop at most 30 points with probability at least 0.9" in result.stdout
    assert "certify half (29 images): the exact test at level 0.1, in order" in result.stdout
    betting = run_cli("calibrate", str(bundle), "--data", str(IMAGES), "--target-drop", "30", "--confidence", "0.9",
                      "--certify-test", "betting")
    assert betting.returncode == 0, betting.stderr
    assert json.loads((bundle / "manifest.json").read_text())["policy"]["certify_test"] == "betting"
    alone = run_cli("calibrate", str(bundle), "--data", str(IMAGES), "--target-drop", "30", "--certify-test", "betting")
    assert alone.returncode != 0 and "give --confidence too" in alone.stderr and "Traceback" not in alone.stderr
    refused = run_cli("calibrate", str(bundle), "--data", str(IMAGES), "--budget", "0.5", "--confidence", "0.9")
    assert refused.returncode != 0 and "applies to a target drop" in refused.stderr and "Traceback" not in refused.stderr


def test_calibrate_auto_keeps_the_policy_whose_scores_best_predict_the_drop_event(bundle):
    from edgekd.runtime.calibration import calibrate_bundle

    auroc = {}
    for name in ("max_prob", "entropy", "margin"):
        for options in itertools.product((False, True), repeat=3):
            temperature, running_ensemble, agreement = options
            chosen = calibrate_bundle(bundle, IMAGES, target_drop=1.0, policy=name, temperature=temperature,
                                      running_ensemble=running_ensemble, agreement=agreement, log=lambda m: None)
            known = [a for a in chosen.auroc if a is not None]  # None: no image of the drop event at that exit
            assert len(chosen.auroc) == 3 and known and all(0.0 <= a <= 1.0 for a in known)
            assert (chosen.running_ensemble, chosen.agreement) == (running_ensemble, agreement)
            auroc[name, options] = np.mean(known)
    for running_ensemble in (False, True):
        gated = calibrate_bundle(bundle, IMAGES, target_drop=1.0, gate=True, temperature=True,
                                 running_ensemble=running_ensemble, log=lambda m: None)
        assert len(gated.gate) == 3 and all(len(w) == 7 for w in gated.gate)
        auroc["gate", running_ensemble] = np.mean([a for a in gated.auroc if a is not None])
    lines = []
    chosen = calibrate_bundle(bundle, IMAGES, target_drop=1.0, policy="auto", log=lines.append)
    assert np.mean([a for a in chosen.auroc if a is not None]) == pytest.approx(max(auroc.values()), abs=1e-4)
    # a header, one line per candidate (3 policies x 8 option sets, 2 gates), the final exit alone against its ensemble, the choice
    assert len(lines) == 29 and "the final exit answering alone" in lines[-2]
    assert "drop-event AUROC" in lines[0] and any("running ensemble, agreement" in line for line in lines)
    written = json.loads((bundle / "manifest.json").read_text())["policy"]
    assert (written["running_ensemble"], written["agreement"]) == (chosen.running_ensemble, chosen.agreement)
    assert len(written["gate"]) == len(chosen.gate)
    with pytest.raises(EdgekdError, match="unknown exit policy"):
        calibrate_bundle(bundle, IMAGES, target_drop=1.0, policy="maxprob")


GATE = [np.array([2.0, 1.0, 1.0, 2.0, 1.0, 1.0, -1.5])] * 3  # weights over the gate's 6 features, then the bias


@pytest.mark.parametrize("look_back", ["ensemble and agreement", "gate"])
def test_looking_back_routes_alike_in_batches_alone_and_in_evaluation(model, test_images, look_back):
    """The early-exit loop carries each sample's ensemble and last label through compaction: its exits and
    labels are those of the same walk over every exit (what calibrate and bench score)."""
    images, labels = test_images
    logits = exit_logits(model, images)
    looking_back = EarlyExitModel(BUNDLE)
    looking_back.running_ensemble = True
    if look_back == "gate":
        looking_back.gate = GATE
    else:
        looking_back.agreement = True
    scored = score_exits(looking_back, logits, labels)
    # the gate's scores sit elsewhere: thresholds at each exit's 70th percentile send about 30% out there
    thresholds = np.array([0.45, 0.4, 0.3]) if look_back != "gate" else np.quantile(scored.scores[:3], 0.7, axis=1)
    expected = assign_exits(scored.scores, thresholds)
    batch = looking_back.predict(images, mode="early", thresholds=thresholds)
    assert len(set(batch.exits.tolist())) > 1
    np.testing.assert_array_equal(batch.exits - 1, expected)
    answered = np.stack([p.argmax(1) for p in _answers(looking_back, logits)])
    np.testing.assert_array_equal(batch.labels, answered[expected, np.arange(len(labels))])
    np.testing.assert_allclose(batch.confidences, scored.scores[expected, np.arange(len(labels))], rtol=1e-5)
    for i in range(0, len(images), 13):
        alone = looking_back.predict(images[i:i + 1], mode="early", thresholds=thresholds)
        assert (alone.exits[0], alone.labels[0]) == (batch.exits[i], batch.labels[i])
    # the final exit answers alone, so a sample that reaches it gets the plain model's label
    last = batch.exits == 4
    np.testing.assert_array_equal(batch.labels[last], logits[3][last].argmax(1))


def test_calibrate_gate_cli_and_a_gate_this_runtime_cannot_read(bundle):
    result = run_cli("calibrate", str(bundle), "--data", str(IMAGES), "--target-drop", "2", "--gate", "--temperature")
    assert result.returncode == 0, result.stderr
    assert "learned gate with per-exit temperatures: thresholds" in result.stdout
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert len(manifest["policy"]["gate"]) == 3
    gated = EarlyExitModel(bundle)
    assert gated.predict(np.zeros((2, *gated.manifest.input.shape), np.float32), mode="early").labels.shape == (2,)
    for flags, message in ((["--policy", "auto"], "--policy auto tries already"), (["--agreement"], "drop --agreement")):
        refused = run_cli("calibrate", str(bundle), "--data", str(IMAGES), "--target-drop", "2", "--gate", *flags)
        assert refused.returncode == 2 and message in refused.stderr and "Traceback" not in refused.stderr
    manifest["policy"]["gate"] = [[1.0, 2.0]] * 3  # as from an edgekd with other gate features
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BadInput, match="calibrate .* --gate"):
        EarlyExitModel(bundle, verify=False)


def _answers(model, logits):
    trail = model.trail()
    return [trail.step(z, k)[0] for k, z in enumerate(logits)]


def test_bench_writes_json_and_png(bundle, tmp_path):
    assert run_cli("calibrate", str(bundle), "--data", str(IMAGES), "--target-drop", "2").returncode == 0
    result = run_cli("bench", str(bundle), "--data", str(IMAGES), "--repeats", "5", "--batch", "16", "--passes", "2",
                     "--out", str(tmp_path / "b"))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert report["test_images"] == 60 and len(report["per_exit"]) == 4
    assert report["oracle"]["accuracy"] >= max(e["test_top1"] for e in report["per_exit"])
    calibrated = report["calibrated"]
    assert sum(calibrated["exit_counts"]) == 60 and calibrated["throughput_early"] > 0
    # early exit and the full model both timed through predict, so their ratio is the speedup reported
    ratio = calibrated["latency_ms_batch1"] / calibrated["full_latency_ms_batch1"]
    assert calibrated["latency_ratio_vs_full"] == pytest.approx(ratio, rel=1e-2)
    assert calibrated["measured_speedup"] == pytest.approx(1 / ratio, rel=1e-2)
    # hindsight lies between the calibrated point and the oracle, at no less accuracy; at the 2-point target no dearer
    same, target = calibrated["hindsight"]["same_accuracy"], calibrated["hindsight"]["at_target_drop"]
    assert same["accuracy"] >= calibrated["accuracy"] - 1e-9
    assert calibrated["oracle_flops_fraction_at_same_accuracy"] - 1e-4 <= same["flops_fraction"] <= calibrated["flops_fraction"] + 1e-4
    assert calibrated["hindsight"]["target_drop"] == 2.0 and target["accuracy"] >= report["full_model"]["test_top1"] - 2.0 - 1e-9
    if calibrated["accuracy_drop"] <= 2.0:
        assert target["flops_fraction"] <= same["flops_fraction"] + 1e-9
    assert "hindsight (thresholds searched on these test images)" in result.stdout
    assert report["curve"][0]["flops_fraction"] <= report["curve"][-1]["flops_fraction"] + 1e-9
    if (tmp_path / "b" / "bench.png").exists():
        assert (tmp_path / "b" / "bench.png").read_bytes()[:4] == b"\x89PNG"
    assert "oracle:" in result.stdout and "img/s" in result.stdout
    # on CPU the segments compute in host memory: nothing crosses to a device, at batch 1 or batched
    assert set(calibrated["host_copies"]) == {"batch_1", f"batch_{calibrated['batch']}"}
    assert all(c["total"] == 0 for c in calibrated["host_copies"].values())
    assert "host-device copies per batch" in result.stdout
    assert calibrated["batch1_in_one_call"] and "passes over the test images, one call)" in result.stdout
    chained = run_cli("bench", str(bundle), "--data", str(IMAGES), "--repeats", "5", "--batch", "16", "--passes", "1",
                      "--limit", "20", "--no-single-call", "--out", str(tmp_path / "c"))
    assert chained.returncode == 0, chained.stderr
    assert "passes over the test images, the segment chain)" in chained.stdout
    assert not json.loads((tmp_path / "c" / "bench.json").read_text())["calibrated"]["batch1_in_one_call"]


def test_int8_graphs_calibrated_on_their_own_scores_and_benched_against_the_fp32_full_model(bundle, tmp_path):
    assert run_cli("calibrate", str(bundle), "--data", str(IMAGES), "--target-drop", "2").returncode == 0
    fp32_thresholds = EarlyExitModel(bundle).thresholds
    calibrated = run_cli("calibrate", str(bundle), "--data", str(IMAGES), "--target-drop", "2", "--precision", "int8")
    assert calibrated.returncode == 0, calibrated.stderr
    assert "(int8 graphs)" in calibrated.stdout
    manifest = json.loads((bundle / "manifest.json").read_text())
    int8_policy = manifest["precisions"]["int8"]["policy"]
    int8 = EarlyExitModel(bundle, precision="int8")
    assert int8.thresholds == manifest["precisions"]["int8"]["thresholds"] and EarlyExitModel(bundle).thresholds == fp32_thresholds
    # the policy's reference is the INT8 graphs' own final exit on the validation images
    images, labels = load_split(int8, IMAGES, "val")
    int8_final = 100.0 * (exit_logits(int8, images)[-1].argmax(1) == labels).mean()
    assert int8_policy["val_final_exit_accuracy"] == pytest.approx(int8_final, abs=1e-3)
    reports = {}
    for precision in ("fp32", "int8"):
        out = tmp_path / precision
        result = run_cli("bench", str(bundle), "--data", str(IMAGES), "--repeats", "3", "--batch", "16", "--passes", "1",
                         "--precision", precision, "--out", str(out))
        assert result.returncode == 0, result.stderr
        reports[precision] = json.loads((out / "bench.json").read_text())
    assert "vs_fp32_full" not in reports["fp32"]["calibrated"]
    versus = reports["int8"]["calibrated"]["vs_fp32_full"]
    assert versus["fp32_full_test_top1"] == reports["fp32"]["full_model"]["test_top1"]
    assert versus["accuracy_drop"] == pytest.approx(versus["fp32_full_test_top1"] - reports["int8"]["calibrated"]["accuracy"], abs=1e-3)
    assert versus["latency_ratio"] == pytest.approx(reports["int8"]["calibrated"]["latency_ms_batch1"]
                                                    / versus["fp32_full_latency_ms_batch1"], rel=1e-2)
    assert "vs the FP32 full model" in result.stdout


def test_the_final_exit_answering_with_every_exits_ensemble_is_measured_against_the_final_exit_alone(bundle, tmp_path):
    from edgekd.runtime.policies import log_softmax

    result = run_cli("calibrate", str(bundle), "--data", str(IMAGES), "--target-drop", "2", "--policy", "margin", "--temperature",
                     "--final-ensemble")
    assert result.returncode == 0, result.stderr
    assert "margin with per-exit temperatures, the final exit answering with every exit's ensemble: thresholds" in result.stdout
    policy = json.loads((bundle / "manifest.json").read_text())["policy"]
    model = EarlyExitModel(bundle)
    assert policy["final_ensemble"] and model.final_ensemble
    images, labels = load_split(model, IMAGES, "val")
    logits = exit_logits(model, images)
    final_alone = 100.0 * (logits[-1].argmax(1) == labels).mean()
    assert policy["val_final_exit_accuracy"] == pytest.approx(final_alone, abs=1e-3)  # the plain model, not the ensemble
    assert policy["val_accuracy"] >= final_alone - 2.0
    # a sample that reaches the final exit gets the geometric ensemble of every exit's temperature-scaled probabilities
    ensemble = sum(log_softmax(z, t) for z, t in zip(logits, model.temperatures)).argmax(1)
    everyone_deep = model.predict(images, mode="early", thresholds=[NEVER] * 3)
    np.testing.assert_array_equal(everyone_deep.labels, ensemble)
    assert (ensemble != logits[-1].argmax(1)).any(), "the tiny bundle's ensemble never disagrees with its final exit"
    out = tmp_path / "b"
    benched = run_cli("bench", str(bundle), "--data", str(IMAGES), "--repeats", "3", "--batch", "16", "--passes", "1", "--out", str(out))
    assert benched.returncode == 0, benched.stderr
    report = json.loads((out / "bench.json").read_text())
    calibrated = report["calibrated"]
    assert calibrated["final_ensemble"] and calibrated["batch1_in_one_call"] and "final exit: ensemble" in benched.stdout
    assert calibrated["accuracy_drop"] == pytest.approx(report["per_exit"][-1]["test_top1"] - calibrated["accuracy"], abs=2e-3)
    # --policy auto keeps the final exit alone unless its ensemble reaches the target more cheaply
    lines = []
    from edgekd.runtime.calibration import calibrate_bundle
    chosen = calibrate_bundle(bundle, IMAGES, target_drop=2.0, policy="auto", log=lines.append)
    compared = next(line for line in lines if line.startswith("the final exit answering alone"))
    costs = [float(part.split("cost ")[1].split(",")[0]) for part in compared.split("; with every exit's ensemble")]
    assert chosen.final_ensemble == (costs[1] < costs[0])
    # certified: the drop on the certify half is taken from the final exit alone there too
    from edgekd.runtime.certify import split_halves
    certified = calibrate_bundle(bundle, IMAGES, target_drop=30.0, confidence=0.9, policy="margin", final_ensemble=True,
                                 log=lambda m: None)
    _, certify = split_halves(labels)
    assert certified.final_ensemble and certified.certify_images == len(certify)
    assert certified.val_final_exit_accuracy == pytest.approx(100.0 * (logits[-1].argmax(1) == labels)[certify].mean(), abs=1e-3)


def test_predict_cli(tmp_path):
    image = next((IMAGES / "test").glob("*/*.png"))
    result = run_cli("predict", str(BUNDLE), str(image), "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["predictions"][0]["exit"] == 4 and out["predictions"][0]["class"] in EarlyExitModel(BUNDLE).classes
    missing = run_cli("predict", str(BUNDLE), str(tmp_path / "nope.png"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    not_bundle = run_cli("predict", str(tmp_path), str(image))
    assert not_bundle.returncode == 2 and "not an edgekd bundle" in not_bundle.stderr


def test_calibrate_from_the_validation_sample_stored_in_the_bundle(bundle):
    result = run_cli("calibrate", str(bundle), "--budget", "0.8")
    assert result.returncode == 0, result.stderr
    policy = json.loads((bundle / "manifest.json").read_text())["policy"]
    assert policy["val_images"] == 200 and policy["val_mean_cost"] <= 0.8
    assert run_cli("calibrate", str(bundle)).returncode == 2  # neither --target-drop nor --budget
