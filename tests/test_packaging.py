"""edgekd installs like a library: every package and the recipes are in the wheel; recipes copy out to edit."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import ROOT, run_cli


def test_pyproject_names_every_package_and_ships_the_recipes(tmp_path):
    packages = {str(p.parent.relative_to(ROOT)).replace(os.sep, ".") for p in (ROOT / "edgekd").rglob("__init__.py")}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    wheel = zipfile.ZipFile(next(tmp_path.glob("edgekd-*.whl")))
    names = set(wheel.namelist())
    assert all(f"{p.replace('.', '/')}/__init__.py" in names for p in packages), packages
    shipped = {Path(n).name for n in names if n.startswith("edgekd/recipes/")}
    assert shipped == {p.name for p in (ROOT / "recipes").glob("*.yaml")} and "oto_resnet18.yaml" in shipped


def test_recipe_copy_writes_the_yaml_to_edit_and_keeps_an_existing_one(tmp_path):
    first = run_cli("recipe", "kd_resnet18", "--copy", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    copied = tmp_path / "kd_resnet18.yaml"
    assert copied.read_text() == (ROOT / "recipes" / "kd_resnet18.yaml").read_text()
    copied.write_text(copied.read_text() + "# mine\n")
    again = run_cli("recipe", "kd_resnet18", "--copy", cwd=tmp_path)
    assert again.returncode == 2 and "already exists; pass --overwrite" in again.stderr
    assert copied.read_text().endswith("# mine\n")


def test_the_tensorrt_extra_allows_exactly_the_majors_the_engine_builder_supports():
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    from edgekd.install_hints import TENSORRT_MAJORS

    [tensorrt] = [Requirement(r) for r in requires("edgekd") or [] if r.startswith("tensorrt") and "tensorrt" in str(Requirement(r).marker)]
    assert {major for major in range(8, 16) if tensorrt.specifier.contains(f"{major}.4.0")} == set(TENSORRT_MAJORS) == {10, 11}
