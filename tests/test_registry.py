import pytest

from edgekd.errors import EdgekdError
from edgekd.registry import Registry


def test_duplicate_names_are_refused():
    reg = Registry("widget")
    reg.register("a")(object())
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(object())


def test_unknown_name_lists_known_names_and_closest_match():
    reg = Registry("model")
    for name in ("resnet18", "resnet34", "vgg8"):
        reg.register(name)(name)
    with pytest.raises(EdgekdError) as err:
        reg.get("resnt18")
    message = str(err.value)
    assert "did you mean 'resnet18'" in message
    assert "resnet34" in message and "vgg8" in message


def test_names_are_sorted_and_membership_works():
    reg = Registry("thing")
    reg.register("b")(1)
    reg.register("a")(2)
    assert reg.names() == ["a", "b"] and "a" in reg and "c" not in reg and len(reg) == 2
