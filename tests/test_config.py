"""Recipe validation: unknown keys with their path and closest key, types and ranges, registry names, overrides."""
import ast
from pathlib import Path

import pytest

from edgekd.config import list_recipes, resolve
from edgekd.recipe_loading import load_recipe, resolve_recipe
from edgekd.errors import EdgekdError

BASE = {"name": "t", "student": {"name": "resnet18"}, "method": {"name": "ce"}}


def test_every_recipe_and_profile_validates():
    names = list_recipes()
    assert {"teacher_resnet152", "ce_resnet18", "kd_resnet18"} <= set(names)
    for name in names:
        for profile in (None, "smoke", "quick"):
            config = load_recipe(name, profile=profile)
            assert config.profile == profile
            if profile:  # offline: generated images, or local ones the user points data.root at
                assert config.data.name in ("shapes", "imagefolder"), (name, profile)


def test_unknown_key_names_its_path_and_closest_key():
    with pytest.raises(EdgekdError, match=r"unknown key 'train\.epoch'; did you mean 'train\.epochs'"):
        resolve({**BASE, "train": {"epoch": 3}})
    with pytest.raises(EdgekdError, match=r"unknown key 'teachers\.0\.model\.widht'; did you mean 'teachers\.0\.model\.width'"):
        resolve({**BASE, "method": {"name": "kd"}, "teachers": [{"model": {"name": "resnet34", "widht": 1}}]})
    with pytest.raises(EdgekdError, match=r"unknown key 'studnet'; did you mean 'student'"):
        resolve({**BASE, "studnet": {}})


def test_wrong_type_or_range_names_the_field():
    with pytest.raises(EdgekdError, match=r"train\.lr: Input should be greater than 0"):
        resolve({**BASE, "train": {"lr": -0.1}})
    with pytest.raises(EdgekdError, match=r"train\.epochs: .*integer"):
        resolve({**BASE, "train": {"epochs": "many"}})
    with pytest.raises(EdgekdError, match=r"train\.optimizer"):
        resolve({**BASE, "train": {"optimizer": "adam"}})


def test_unknown_registry_names_fail_before_any_work():
    with pytest.raises(EdgekdError, match="unknown dataset 'cifar1000'; did you mean 'cifar100'"):
        resolve_recipe({**BASE, "data": {"name": "cifar1000"}})
    with pytest.raises(EdgekdError, match="unknown method 'kdd'"):
        resolve_recipe({**BASE, "method": {"name": "kdd"}})
    with pytest.raises(EdgekdError, match="unknown model"):
        resolve_recipe({**BASE, "student": {"name": "resnet19"}})
    with pytest.raises(EdgekdError, match="unknown head 'bottlenek'"):
        resolve_recipe({**BASE, "student": {"name": "resnet18", "head": ["strided", "bottlenek", "bottleneck"]}})
    with pytest.raises(EdgekdError, match=r"2 kind\(s\) for the 3 early exits"):  # before any teacher trains
        resolve_recipe({**BASE, "student": {"name": "resnet18", "head": ["strided", "bottleneck"]}})
    assert resolve({**BASE, "method": {"name": "kdd"}}).method.name == "kdd"  # the schema alone does not look names up


def test_the_schema_imports_no_other_part_of_edgekd():
    tree = ast.parse(Path(__import__("edgekd.config").config.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert {m for m in imported if m.startswith("edgekd")} <= {"edgekd.errors", "edgekd.registry"}


def test_set_overrides_profiles_and_lists():
    config = load_recipe("kd_resnet18", profile="smoke", overrides=["train.epochs=5", "train.milestones=[1,2]",
                                                                    "teachers.0.train.lr=0.2", "method.alpha=0.5"])
    assert config.train.epochs == 5 and config.train.milestones == [1, 2]
    assert config.teachers[0].train.lr == 0.2 and config.method.params["alpha"] == 0.5
    assert config.run_name == "kd_resnet18-smoke"
    mixed = load_recipe("kd_resnet18", profile="smoke", overrides=["student.head=[strided,bottleneck,bottleneck]"])
    assert mixed.student.head == ["strided", "bottleneck", "bottleneck"]
    with pytest.raises(EdgekdError, match="not an index"):
        load_recipe("kd_resnet18", overrides=["teachers.3.checkpoint=x"])
    with pytest.raises(EdgekdError, match="key=value"):
        load_recipe("kd_resnet18", overrides=["train.epochs"])


def test_teacher_train_inherits_recipe_train():
    config = load_recipe("kd_resnet18", profile="smoke")
    teacher = config.teachers[0].train
    assert teacher.epochs == 1 and teacher.weight_decay == config.train.weight_decay
    assert config.teachers[0].model.width == 0.0625
    seeded = load_recipe("kd_resnet18", profile="smoke", overrides=["train.seed=3"])
    assert seeded.train.seed == 3 and seeded.teachers[0].train.seed == 0  # one teacher for every student seed


def test_unknown_profile_and_recipe():
    with pytest.raises(EdgekdError, match="no profile 'fast'. Profiles: quick, smoke"):
        load_recipe("kd_resnet18", profile="fast")
    with pytest.raises(EdgekdError, match="did you mean 'kd_resnet18'"):
        load_recipe("kd_resnet81")


def test_yaml_tags_that_run_code_are_refused(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo hacked']\nstudent: {name: resnet18}\nmethod: {name: ce}\n")
    with pytest.raises(EdgekdError, match="not valid YAML"):
        load_recipe(str(path))
