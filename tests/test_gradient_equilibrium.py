"""Gradient equilibrium: the forward pass is unchanged, and each shared trunk's gradient is the
1/(K-k) : (K-k-1)/(K-k) mix of its head's and the deeper path's gradients."""
import torch

from edgekd.models import create_model


def _exit_gradients(model, images, exit_index):
    """Gradient of the first stage's weights from the loss of one exit."""
    model.zero_grad()
    model(images).logits[exit_index].sum().backward()
    first = next(model.trunks[0].parameters())
    return first.grad.clone()


def test_gradient_equilibrium_keeps_outputs_and_rescales_shared_gradients():
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10, width=0.125).eval()  # eval: BatchNorm is the same in every pass
    images = torch.randn(4, 3, 32, 32)
    plain = [z.detach() for z in model(images).logits]
    plain_grads = [_exit_gradients(model, images, k) for k in range(4)]
    model.gradient_equilibrium = True
    balanced = model(images).logits
    assert all(torch.equal(a, b.detach()) for a, b in zip(plain, balanced))
    # Exit k's gradient reaches trunk 1 through the forks after trunks 1..k: at fork j (0-based) the
    # deeper path keeps (K-j-1)/(K-j), and the head k path takes 1/(K-k).
    num_exits = 4
    for k in range(num_exits):
        expected = 1.0 / (num_exits - k)
        for j in range(k):
            expected *= (num_exits - j - 1) / (num_exits - j)
        torch.testing.assert_close(_exit_gradients(model, images, k), plain_grads[k] * expected, rtol=1e-4, atol=1e-7)
        assert abs(expected - 1 / num_exits) < 1e-12  # every exit reaches the shared stem with the same weight


def test_gradient_equilibrium_is_off_without_gradients():
    model = create_model("resnet18", num_classes=10, width=0.125).eval()
    model.gradient_equilibrium = True
    with torch.no_grad():
        outputs = model(torch.randn(2, 3, 32, 32))
    assert len(outputs.logits) == 4
