"""Cached teacher logits (train.teacher_cache_views): each batch's student images are views whose
teacher logits are exactly the teacher's on them; the cache refuses what it cannot serve; a cached run
trains, prints its estimate and its time."""
import pytest
import torch
import yaml

from conftest import run_cli_here
from edgekd.config import DataConfig
from edgekd.data import build_data
from edgekd.engine.teacher_cache import TeacherLogitCache
from edgekd.errors import EdgekdError
from edgekd.models import create_model

SMOKE = ["recipe", "oto_resnet18", "--profile", "smoke"]


def test_cached_logits_are_the_teachers_logits_of_the_view_the_student_sees():
    data = build_data(DataConfig(name="shapes", train_size=120, test_size=20, val_size=20, workers=0))
    torch.manual_seed(0)
    teacher = create_model("resnet18", num_classes=10, exits="all", image_size=32, width=0.125).eval()
    cache = TeacherLogitCache([teacher], data.train, data.train_batch_augment, 3, seed=0, batch_size=32,
                              device=torch.device("cpu"))
    index = torch.tensor([0, 5, 99, 5])
    images = torch.stack([data.train[int(i)][0] for i in index])
    views, outs = cache.batch(images, index, torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = teacher(views).logits
    assert len(outs) == 1 and len(outs[0].logits) == teacher.num_exits
    for got, want in zip(outs[0].logits, expected):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # another epoch's draw takes other views of the same images, and their logits again
    other, other_outs = cache.batch(images, index, torch.Generator().manual_seed(2))
    assert not torch.equal(other, views)
    with torch.no_grad():
        torch.testing.assert_close(other_outs[0].logits[-1], teacher(other).logits[-1], atol=1e-5, rtol=1e-5)


def test_too_many_views_for_memory_are_refused_with_the_size():
    data = build_data(DataConfig(name="shapes", train_size=60, test_size=20, val_size=10, workers=0))
    teacher = create_model("resnet18", num_classes=10, exits="all", image_size=32, width=0.125).eval()
    teacher.num_classes = 10_000_000  # as a teacher over ten million classes would be
    with pytest.raises(EdgekdError, match="GiB of teacher logits"):
        TeacherLogitCache([teacher], data.train, data.train_batch_augment, 2, seed=0, batch_size=32, device=torch.device("cpu"))


def test_a_cached_run_trains_and_reports_its_estimate_and_time(tmp_path):
    result = run_cli_here(*SMOKE, "--set", "train.teacher_cache_views=2", "--runs-dir", str(tmp_path), "--export-dir", str(tmp_path / "export"))
    assert result.returncode == 0, result.stderr
    assert "teacher logits of 2 view(s) of each of" in result.stdout
    assert "on this machine (estimated from 3 timed steps)" in result.stdout
    assert "oto_resnet18-smoke: trained in" in result.stdout and "oto_resnet18-smoke: done in" in result.stdout


def tiny_recipe(method: dict, **train) -> dict:
    return {"name": "cached", "data": {"name": "shapes", "train_size": 200, "test_size": 40, "val_size": 40, "workers": 0},
            "teachers": [{"model": {"name": "resnet18", "exits": "all", "width": 0.125}, "exit_heads": "joint",
                          "train": {"epochs": 1, "teacher_cache_views": 0}}],
            "student": {"name": "resnet18", "exits": "all", "width": 0.125}, "method": method,
            "train": {"epochs": 1, "batch_size": 32, "teacher_cache_views": 2, **train}}


@pytest.mark.parametrize("method, train, data, message", [
    ({"name": "mtkd_ssr"}, {}, {}, "reads the teachers' features"),
    ({"name": "oto"}, {}, {"augment": "none"}, "batched augmentation"),
    ({"name": "oto"}, {"progressive_resize": {"initial_scale": 0.75}}, {}, "progressive_resize"),
])
def test_the_cache_refuses_what_it_cannot_serve(tmp_path, method, train, data, message):
    recipe = tiny_recipe(method, **train)
    recipe["data"].update(data)
    path = tmp_path / "cached.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = run_cli_here("recipe", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "runs" / "teachers").exists()  # refused before any teacher trained
