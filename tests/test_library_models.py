"""timm and torchvision models as edgekd models: weight files in, the source's logits out, clear errors."""
import logging

import pytest
import torch

timm = pytest.importorskip("timm", reason="timm models need the train extra (timm)")
torchvision = pytest.importorskip("torchvision")
from safetensors.torch import save_file  # noqa: E402

from edgekd.config import MethodConfig  # noqa: E402
from edgekd.errors import EdgekdError  # noqa: E402
from edgekd.methods import build_method  # noqa: E402
from edgekd.models import create_model  # noqa: E402

SIZE = 64
FAMILIES = [("timm", "resnet18"), ("timm", "resnet50"), ("timm", "mobilenetv3_large_100"), ("timm", "efficientnet_b0"),
            ("timm", "convnext_atto"), ("timm", "regnetx_002"), ("torchvision", "resnet50")]


def source_model(library: str, name: str, num_classes: int = 10) -> torch.nn.Module:
    torch.manual_seed(0)
    if library == "timm":
        return timm.create_model(name, num_classes=num_classes).eval()
    return torchvision.models.get_model(name, num_classes=num_classes).eval()


def write_weights(model: torch.nn.Module, path) -> str:
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if str(path).endswith(".safetensors"):
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return str(path)


@pytest.mark.parametrize("library,name", FAMILIES, ids=[f"{a}-{b}" for a, b in FAMILIES])
def test_weight_file_loads_as_student_and_teacher_with_the_sources_logits(library, name, tmp_path):
    source = source_model(library, name)
    suffix = ".safetensors" if name != "resnet18" else ".pth"
    weights = write_weights(source, tmp_path / f"{name}{suffix}")
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = source(x)
        student = create_model(f"{library}/{name}", num_classes=10, exits="all", image_size=SIZE, weights=weights).eval()
        teacher = create_model(f"{library}/{name}", num_classes=10, exits="last", image_size=SIZE, weights=weights).eval()
        for net in (student, teacher):
            assert (net(x).logits[-1] - expected).abs().max().item() <= 1e-5
    assert student.stage_features and student.num_exits == (4 if library == "torchvision" or "convnext" in name else 5)
    assert [e.stride for e in student.exit_info][-1] == 32
    # the weights go back out in the library's own names, without the exit heads
    back = student.source_state_dict()
    assert back.keys() == source.state_dict().keys()
    assert all(torch.equal(back[k], v) for k, v in source.state_dict().items())


def test_a_vit_stays_whole_and_teaches_logit_methods_only():
    vit = create_model("timm/vit_tiny_patch16_224", num_classes=10, exits="last", image_size=224)
    assert not vit.stage_features and vit.num_exits == 1
    with pytest.raises(EdgekdError, match="no early exits: use exits: last"):
        create_model("timm/vit_tiny_patch16_224", num_classes=10, exits=[1, 1], image_size=224)
    student = create_model("resnet10", num_classes=10, exits="all", image_size=224, width=0.25)
    assert build_method(MethodConfig(name="kd"), student, [vit]) is not None
    assert build_method(MethodConfig(name="demkd", gamma=0.0), student, [vit]) is not None
    for method in (MethodConfig(name="skd"), MethodConfig(name="demkd")):
        with pytest.raises(EdgekdError, match="reads stage features, but teacher 1 cannot be cut into stages"):
            build_method(method, student, [vit])


def test_a_class_count_mismatch_replaces_the_classifier_and_says_so(tmp_path, caplog):
    weights = write_weights(source_model("timm", "resnet18", num_classes=1000), tmp_path / "in1k.safetensors")
    with caplog.at_level(logging.INFO, logger="edgekd"):
        net = create_model("timm/resnet18", num_classes=10, exits="last", image_size=SIZE, weights=weights)
    assert net.fresh_classifier == 1000 and net.heads[-1](torch.zeros(1, 512, 2, 2)).shape == (1, 10)
    assert "classifier 'fc' has 1000 classes and the dataset 10; the classifier is replaced" in caplog.text
    tv = write_weights(source_model("torchvision", "resnet50", num_classes=1000), tmp_path / "tv.pth")
    assert create_model("torchvision/resnet50", num_classes=7, exits="last", image_size=SIZE, weights=tv).fresh_classifier == 1000


def test_wrong_files_and_names_get_clear_errors(tmp_path):
    def build(name, weights):
        return create_model(name, num_classes=10, exits="last", image_size=SIZE, weights=weights)

    garbage = tmp_path / "broken.safetensors"
    garbage.write_bytes(b"not a safetensors file at all")
    with pytest.raises(EdgekdError, match="is not a readable safetensors file"):
        build("timm/resnet18", str(garbage))
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(EdgekdError, match="is not a readable PyTorch weight file"):
        build("timm/resnet18", str(text))
    pickled = tmp_path / "whole_model.pth"
    torch.save(source_model("timm", "resnet18"), pickled)
    with pytest.raises(EdgekdError, match=r"pickled Python objects .* torch.save\(model.state_dict\(\)"):
        build("timm/resnet18", str(pickled))
    with pytest.raises(EdgekdError, match="weight file .*missing.pth does not exist"):
        build("timm/resnet18", str(tmp_path / "missing.pth"))
    other = write_weights(source_model("timm", "resnet18"), tmp_path / "r18.safetensors")
    with pytest.raises(EdgekdError, match=r"does not fit this model: missing keys: layer1\.2\..*unexpected keys|does not fit"):
        build("timm/resnet34", other)
    with pytest.raises(EdgekdError, match="unknown timm model 'resnt18'; closest: .*resnet18"):
        build("timm/resnt18", None)
    with pytest.raises(EdgekdError, match="unknown torchvision model 'resnet5O'; did you mean 'resnet50'"):
        build("torchvision/resnet5O", None)
    with pytest.raises(EdgekdError, match="unknown model source 'timmm'"):
        build("timmm/resnet18", None)
    with pytest.raises(EdgekdError, match="edgekd backbone, which has no pretrained weights"):
        build("resnet18", other)
    with pytest.raises(EdgekdError, match="has no weights 'IMAGENET9K'. Known: DEFAULT, IMAGENET1K_V1"):
        build("torchvision/resnet50", "IMAGENET9K")


def test_a_teacher_on_other_statistics_gets_its_inputs_converted():
    from edgekd.bundle.preprocess import Preprocess

    teacher = create_model("timm/resnet18", num_classes=10, exits="last", image_size=SIZE).eval()
    student_stats = Preprocess(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    pixels = torch.rand(2, 3, SIZE, SIZE)
    as_student = (pixels - 0.5) / 0.25
    mean, std = torch.tensor(teacher.preprocess.mean).view(1, 3, 1, 1), torch.tensor(teacher.preprocess.std).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = teacher((pixels - mean) / std).logits[-1]
        teacher.convert_inputs(student_stats)
        got = teacher(as_student).logits[-1]
    assert (got - expected).abs().max().item() < 1e-5
    assert "input_conversion.scale" not in teacher.state_dict()  # checkpoints stay the model's own


@pytest.mark.parametrize("name", [m for m in __import__("edgekd.methods", fromlist=["METHODS"]).METHODS.names()])
def test_a_timm_student_trains_with_every_method(name):
    from edgekd.config import DataConfig, TrainConfig
    from edgekd.data import build_data
    from edgekd.engine.trainer import Trainer
    from edgekd.methods import METHODS

    torch.manual_seed(0)
    data = build_data(DataConfig(name="shapes", image_size=32, train_size=32, test_size=16, val_size=16, workers=0))
    cls = METHODS.get(name)
    count = 0 if cls.max_teachers == 0 else 2 if cls.max_teachers is None else cls.min_teachers
    paired = name in ("oto", "mtkd_ssr", "skd")  # stage-by-stage methods: a teacher of the same family
    teachers = [create_model("timm/resnet18" if paired else "timm/regnetx_002", num_classes=10, image_size=32,
                             exits=[2, 3, 4, 5] if name in ("oto", "mtkd_ssr") else "last") for _ in range(count)]
    student = create_model("timm/resnet18", num_classes=10, image_size=32, exits=[2, 3, 4, 5])
    before = {k: v.clone() for k, v in student.state_dict().items()}
    method = build_method(MethodConfig(name=name), student, teachers)
    cfg = TrainConfig(epochs=5 if name == "skd" else 1, batch_size=16, lr=0.01, schedule="constant", device="cpu")
    Trainer(student, method, teachers, data, cfg, run_dir="unused", callbacks=[], log=lambda m: None).fit()
    moved = [k for k, v in student.state_dict().items() if not k.endswith("num_batches_tracked") and not torch.equal(v, before[k])]
    assert moved, f"{name}: no student weight changed"


def test_oto_gives_a_pretrained_timm_teacher_its_exits_on_a_frozen_backbone(tmp_path):
    from edgekd.config import DataConfig, ModelConfig, RecipeConfig, TeacherConfig, TrainConfig
    from edgekd.engine.model_io import load_model
    from edgekd.engine.run import train_and_evaluate

    source = source_model("timm", "resnet18")
    weights = write_weights(source, tmp_path / "teacher.safetensors")
    quick = TrainConfig(epochs=1, batch_size=16, lr=0.01, schedule="constant")
    config = RecipeConfig(
        name="oto-timm", data=DataConfig(name="shapes", image_size=32, train_size=48, test_size=16, val_size=16, workers=0),
        teachers=[TeacherConfig(model=ModelConfig(name="timm/resnet18", exits=[2, 3, 4, 5], weights=weights),
                                exit_heads="frozen", heads_train=quick)],
        student=ModelConfig(name="resnet18", width=0.125), method=MethodConfig(name="oto"), train=quick)
    lines = []
    train_and_evaluate(config, tmp_path / "runs" / "oto", runs_dir=tmp_path / "runs", log=lines.append)
    assert any("exit heads on the frozen backbone" in line for line in lines)
    assert not any("fine-tuning" in line for line in lines)  # its classifier already has the dataset's classes
    heads_run = next((tmp_path / "runs" / "teachers").iterdir())
    teacher, _ = load_model(heads_run / "checkpoints" / "best.pt")
    assert teacher.num_exits == 4 and teacher.preprocess.mean == (0.485, 0.456, 0.406)
    kept = teacher.source_state_dict()  # the backbone and classifier are the file's, untouched
    assert all(torch.equal(kept[k], v) for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked"))
