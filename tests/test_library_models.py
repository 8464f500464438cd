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
    from edgekd.models.preprocess import Preprocess

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
