"""Every registered model, built as a multi-exit net: shapes, costs, segments, errors."""
import pytest
import torch

from edgekd.errors import EdgekdError
from edgekd.models import HEADS, MODELS, create_model, resolve_exits

# Deep or wide nets are checked at a reduced width so the suite stays fast; the layout is the same.
NARROW = {"resnet50": 0.25, "resnet101": 0.125, "resnet152": 0.125, "wrn_28_10": 0.25, "resnet32x4": 0.5}


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("head", HEADS.names())
def test_exit_shapes_and_costs_grow_with_depth(name, head):
    model = create_model(name, num_classes=7, head=head, width=NARROW.get(name, 1.0)).eval()
    out = model(torch.randn(2, 3, 32, 32))
    assert len(out.logits) == len(out.features) == model.num_exits >= 3
    assert all(z.shape == (2, 7) for z in out.logits)
    info = model.exit_info
    assert [i.index for i in info] == list(range(1, model.num_exits + 1))
    for shallow, deep in zip(info, info[1:]):
        assert shallow.params < deep.params, (shallow, deep)
        assert shallow.flops < deep.flops, (shallow, deep)
        assert shallow.cumulative_flops < deep.cumulative_flops
        assert shallow.stride <= deep.stride
    assert info[-1].params == sum(p.numel() for p in model.trunks.parameters()) + sum(p.numel() for p in model.heads[-1].parameters())
    assert [f.shape[1] for f in out.features] == [i.channels for i in info]


def test_flops_match_hand_count_for_a_linear_head():
    """A 1-exit model's FLOPs include the final linear layer: 2 * in * out per image."""
    model = create_model("resnet20", num_classes=10, exits="last")
    fc = model.heads[-1][-1]
    assert isinstance(fc, torch.nn.Linear)
    trunk_only = model.exit_info[0].flops - 2 * fc.in_features * fc.out_features
    assert trunk_only > 0


def test_segments_chained_equal_forward():
    model = create_model("resnet18", num_classes=10, width=0.25).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        feature = x
        for k, segment in enumerate(model.segments()):
            feature, logits = segment(feature)
            torch.testing.assert_close(logits, out.logits[k])
            torch.testing.assert_close(feature, out.features[k])


def test_single_exit_teacher_and_chosen_exits():
    teacher = create_model("resnet20", num_classes=10, exits="last")
    assert teacher.num_exits == 1 and teacher.exit_stages == [3]
    model = create_model("resnet18", num_classes=10, exits=[2], width=0.25)
    assert model.exit_stages == [2, 4]  # the final classifier is always an exit


def test_large_inputs_use_the_imagenet_stem():
    small = create_model("resnet18", num_classes=10, image_size=32, width=0.25)
    large = create_model("resnet18", num_classes=10, image_size=224, width=0.25)
    assert small.exit_info[-1].stride == 8 and large.exit_info[-1].stride == 32
    assert large(torch.randn(1, 3, 224, 224)).logits[-1].shape == (1, 10)


def test_bad_names_and_exits_fail_clearly():
    with pytest.raises(EdgekdError, match="did you mean 'resnet18'"):
        create_model("resnet81", num_classes=10)
    with pytest.raises(EdgekdError, match="unknown head"):
        create_model("resnet18", num_classes=10, head="fancy")
    with pytest.raises(EdgekdError, match="stages 1..4"):
        resolve_exits([0, 5], 4)
    with pytest.raises(EdgekdError, match="'all', 'last'"):
        resolve_exits("first", 4)


def test_the_strided_head_halves_the_map_step_by_step_at_about_the_bottleneck_heads_cost():
    head = HEADS.get("strided")(32, 8, 256, 10)  # a first exit: 32 channels at 8 times the final map's size
    strided = [m for m in head.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert [m.kernel_size for m in strided] == [(3, 3)] * 3
    assert head(torch.randn(2, 32, 32, 32)).shape == (2, 10)
    flops = {name: create_model("resnet18", num_classes=10, head=name, width=0.5).exit_info[0].flops for name in ("bottleneck", "strided")}
    assert abs(flops["strided"] / flops["bottleneck"] - 1) < 0.05


def test_a_list_of_heads_gives_each_early_exit_its_own_kind():
    """[strided, bottleneck, bottleneck]: exit 1 is built as in an all-strided model, exits 2-3 as in an
    all-bottleneck one, and the final classifier is the backbone's in all three."""
    def head_shapes(head):
        torch.manual_seed(0)
        model = create_model("resnet18", num_classes=10, head=head, width=0.5)
        return [[tuple(p.shape) for p in h.parameters()] for h in model.heads], model
    strided, _ = head_shapes("strided")
    bottleneck, _ = head_shapes("bottleneck")
    mixed, model = head_shapes(["strided", "bottleneck", "bottleneck"])
    assert strided[0] != bottleneck[0]
    assert mixed == [strided[0], bottleneck[1], bottleneck[2], bottleneck[3]]
    out = model.eval()(torch.randn(2, 3, 32, 32))
    assert [z.shape for z in out.logits] == [(2, 10)] * 4


def test_a_list_of_heads_must_name_one_known_kind_per_early_exit():
    with pytest.raises(EdgekdError, match=r"1 kind\(s\) for the 3 early exits"):
        create_model("resnet18", num_classes=10, head=["strided"], width=0.25)
    with pytest.raises(EdgekdError, match="did you mean 'bottleneck'"):
        create_model("resnet18", num_classes=10, head=["strided", "bottlenek", "linear"], width=0.25)
    with pytest.raises(EdgekdError, match="empty list"):
        create_model("resnet18", num_classes=10, head=[], width=0.25)
