"""The two certification benchmarks (`benchmarks/certify_splits.py`, `benchmarks/certify_redraws.py`) on the
runtime's tiny bundle (exits 35 / 50 / 65 / 72% right on its 60 validation images): their counts add up, a
99-point target certifies every draw and is never exceeded, a target 30 certify images cannot support is
refused draw by draw, and the same arguments print the same figures."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SHAPES_IMAGES

pytestmark = pytest.mark.usefixtures("runtime_fixture")


def run_script(script: str, bundle: Path, *args: str) -> subprocess.CompletedProcess:
    """`python benchmarks/SCRIPT BUNDLE --data <the fixture's images> args...`, its output captured."""
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), str(bundle), "--data", str(SHAPES_IMAGES), *args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def run_benchmark(script: str, bundle: Path, *args: str) -> str:
    """What a successful run printed."""
    done = run_script(script, bundle, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def summary(out: str, unit: str) -> tuple[int, int, int, int]:
    """(runs, certified, refused, exceeded) from the benchmark's summary line."""
    found = re.search(rf"(\d+) {unit}, target drop .*?: (\d+) certified, (\d+) refused; .*? in (\d+) of (\d+)", out)
    assert found, out
    runs, certified, refused, exceeded, of = map(int, found.groups())
    assert of == certified
    return runs, certified, refused, exceeded


def test_redraws_certify_and_keep_a_target_far_above_any_drop(runtime_fixture: Path):
    out = run_benchmark("certify_redraws.py", runtime_fixture, "--target-drop", "99", "--confidence", "0.9", "--draws", "6")
    assert "120 images pooled; each draw: 60 validation" in out and "60 test" in out
    assert "final answer: the final exit alone" in out
    assert summary(out, "draws") == (6, 6, 0, 0)
    costs = [float(c) for c in re.search(r"cost median ([\d.]+) \(min ([\d.]+), max ([\d.]+)\)", out).groups()]
    assert 0 < costs[1] <= costs[0] <= costs[2] <= 1


def test_redraws_refuse_what_thirty_certify_images_cannot_promise(runtime_fixture: Path):
    out = run_benchmark("certify_redraws.py", runtime_fixture, "--target-drop", "0.1", "--confidence", "0.99", "--draws", "4")
    assert summary(out, "draws") == (4, 0, 4, 0)
    assert "test drop median" not in out


def test_redraws_are_seeded(runtime_fixture: Path):
    args = ("--target-drop", "20", "--confidence", "0.8", "--draws", "5")
    first = run_benchmark("certify_redraws.py", runtime_fixture, *args)
    assert first == run_benchmark("certify_redraws.py", runtime_fixture, *args)
    runs, certified, refused, _ = summary(first, "draws")
    assert runs == certified + refused == 5


def test_splits_report_every_split_and_leave_the_bundle_as_it_was(runtime_fixture: Path):
    manifest = (runtime_fixture / "manifest.json").read_text()
    out = run_benchmark("certify_splits.py", runtime_fixture, "--target-drop", "99", "--confidence", "0.9", "--splits", "3",
                        "--policy", "margin")
    assert summary(out, "splits") == (3, 3, 0, 0)
    assert len(re.findall(r"^split +\d+: margin certified on \d+ images", out, re.M)) == 3
    assert (runtime_fixture / "manifest.json").read_text() == manifest


@pytest.mark.parametrize("script", ["certify_redraws.py", "certify_splits.py"])
def test_a_target_or_confidence_calibrate_would_refuse_is_refused_up_front(runtime_fixture: Path, script: str):
    for option, value, says in (("--target-drop", "100", "from 0 up to 100"), ("--confidence", "1.2", "[0.5, 1)")):
        done = run_script(script, runtime_fixture, option, value)
        assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr
        assert done.stdout == ""
