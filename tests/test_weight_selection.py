"""Weight selection (student.init: teacher): the student starts as the first blocks and channels of its
teacher; nets that do not fit are refused, naming the part; a recipe run says what it took."""
import pytest
import torch
import yaml
from torchvision.models.resnet import BasicBlock

from conftest import run_cli_here
from edgekd.models import create_model
from edgekd.models.weight_selection import SelectionError, select_weights


def randomised(net):
    """Random weights and BatchNorm statistics everywhere, as a trained net has (not the zero-init residuals)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5 if "running_var" in name else torch.randn_like(tensor) * 0.2)
    return net.eval()


def test_a_student_of_the_teachers_first_blocks_gives_the_teachers_logits_at_every_exit():
    teacher = randomised(create_model("resnet34", num_classes=10, exits="all", image_size=32, width=0.25))
    # blocks past the second of each stage add nothing (residual branch zero), so the 2-block-per-stage
    # ResNet18 taken from the teacher must compute exactly what the teacher computes
    with torch.no_grad():
        for stage in teacher.stage_modules:
            blocks = stage[1] if isinstance(stage[0], torch.nn.Sequential) else stage
            for block in list(blocks)[2:]:
                assert isinstance(block, BasicBlock)
                block.bn2.weight.zero_()
                block.bn2.bias.zero_()
    student = create_model("resnet18", num_classes=10, exits="all", image_size=32, width=0.25).eval()
    selection = select_weights(student, teacher)
    assert selection.heads_from_teacher == (1, 2, 3, 4)
    assert selection.tensors == len(student.state_dict())
    images = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        theirs, mine = teacher(images).logits, student(images).logits
    assert len(mine) == 4
    for got, want in zip(mine, theirs):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        assert want.abs().max() > 0.1  # a real signal, not zeros agreeing


def test_a_narrower_student_takes_the_first_channels_of_every_tensor():
    teacher = randomised(create_model("resnet18", num_classes=10, exits="all", image_size=32, width=0.5))
    student = create_model("resnet18", num_classes=10, exits="all", image_size=32, width=0.25)
    select_weights(student, teacher)
    mine, theirs = student.state_dict(), teacher.state_dict()
    conv = "trunks.1.0.0.conv1.weight"
    assert mine[conv].shape == (32, 16, 3, 3) and theirs[conv].shape == (64, 32, 3, 3)
    assert torch.equal(mine[conv], theirs[conv][:32, :16])
    for stat in ("trunks.0.0.0.1.running_mean", "trunks.0.0.0.1.running_var"):
        assert torch.equal(mine[stat], theirs[stat][:16])
    classifier = [k for k in mine if k.startswith("heads.3.") and k.endswith("weight")][-1]
    assert torch.equal(mine[classifier], theirs[classifier][:, :mine[classifier].shape[1]])


def test_only_the_exits_the_teacher_has_take_its_heads():
    teacher = randomised(create_model("resnet34", num_classes=10, exits=[2, 4], image_size=32, width=0.25))
    student = create_model("resnet18", num_classes=10, exits="all", image_size=32, width=0.25)
    fresh = {k: v.clone() for k, v in student.heads[0].state_dict().items()}
    selection = select_weights(student, teacher)
    assert selection.heads_from_teacher == (2, 4)
    assert all(torch.equal(fresh[k], v) for k, v in student.heads[0].state_dict().items())  # exit 1 untouched
    assert all(torch.equal(v, teacher.heads[0].state_dict()[k]) for k, v in student.heads[1].state_dict().items())


@pytest.mark.parametrize("student_name, width, teacher_name, message", [
    ("resnet18", 0.25, "resnet50", "same blocks"),       # bottlenecks are other parameters than basic blocks
    ("resnet18", 0.5, "resnet34", "at most as wide"),    # the student is wider than the teacher
    ("resnet34", 0.25, "resnet18", "has no"),            # deeper than the teacher: its third block has no source
])
def test_nets_that_do_not_fit_are_refused_naming_the_part(student_name, width, teacher_name, message):
    teacher = create_model(teacher_name, num_classes=10, exits="all", image_size=32, width=0.25)
    student = create_model(student_name, num_classes=10, exits="all", image_size=32, width=width)
    with pytest.raises(SelectionError, match=message) as err:
        select_weights(student, teacher)
    assert "stage" in str(err.value) or "head" in str(err.value)


def recipe(tmp_path, teacher: dict) -> str:
    path = tmp_path / "inherit.yaml"
    path.write_text(yaml.safe_dump({
        "name": "inherit", "data": {"name": "shapes", "train_size": 160, "test_size": 40, "val_size": 40, "workers": 0},
        "teachers": [{"model": teacher, "train": {"epochs": 1, "batch_size": 32}, "heads_train": {"epochs": 1, "batch_size": 32}}],
        "student": {"name": "resnet18", "exits": "all", "width": 0.125, "init": "teacher"},
        "method": {"name": "oto"}, "train": {"epochs": 1, "batch_size": 32}}))
    return str(path)


def test_a_recipe_run_starts_its_student_from_the_teacher_and_says_so(tmp_path):
    result = run_cli_here("recipe", recipe(tmp_path, {"name": "resnet34", "exits": "all", "width": 0.125}),
                     "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr
    assert ("student initialised from teacher 1 (resnet34) by weight selection: "
            "182 tensors; exit heads from the teacher: 1, 2, 3, 4") in result.stdout


def test_a_teacher_that_cannot_initialise_the_student_is_refused_with_the_fix(tmp_path):
    result = run_cli_here("recipe", recipe(tmp_path, {"name": "resnet50", "exits": "all", "width": 0.125}),
                     "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "student.init: teacher cannot initialise this student from teacher 1 (resnet50)" in result.stderr
    assert "Drop student.init" in result.stderr
    assert not (tmp_path / "runs" / "teachers").exists()  # refused before any teacher trained


def test_init_teacher_without_a_teacher_is_a_config_error(tmp_path):
    path = tmp_path / "alone.yaml"
    path.write_text(yaml.safe_dump({
        "name": "alone", "data": {"name": "shapes", "train_size": 40, "test_size": 20, "val_size": 20},
        "student": {"name": "resnet18", "width": 0.125, "init": "teacher"}, "method": {"name": "ce"}}))
    result = run_cli_here("recipe", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "student.init: teacher needs a teacher" in result.stderr
