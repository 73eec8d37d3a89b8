import math

import pytest
import torch

from sikd_utils.distill import sikd_loss


def test_loss_against_hand_computation():
    # one pixel, two classes: logits (0, ln 3) -> p = (1/4, 3/4); target class 0 -> CE = ln 4
    logits = torch.tensor([0.0, math.log(3.0)]).reshape(1, 2, 1, 1)
    target = torch.zeros(1, 1, 1, dtype=torch.long)
    fs = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1, 1)
    ft = torch.tensor([1.0, 0.0, 3.0, 8.0]).reshape(1, 4, 1, 1)
    out = sikd_loss(logits, fs, ft, target, weight=2.0)
    mse = (0 + 4 + 0 + 16) / 4
    assert out.ce.item() == pytest.approx(math.log(4.0), rel=1e-6)
    assert out.mse.item() == pytest.approx(mse)
    assert out.total.item() == pytest.approx(math.log(4.0) + 2.0 * mse, rel=1e-6)


def test_gradient_reaches_student_only():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    fs = torch.randn(2, 8, 4, 4, requires_grad=True)
    ft = torch.randn(2, 8, 4, 4, requires_grad=True)
    sikd_loss(logits, fs, ft, torch.randint(0, 3, (2, 4, 4))).total.backward()
    assert fs.grad is not None and logits.grad is not None and ft.grad is None


def test_weight_zero_is_plain_cross_entropy():
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    out = sikd_loss(logits, torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4), target, weight=0.0)
    assert out.total.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, target).item())


def test_mismatched_features_name_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 8, 4, 4\).*\(2, 16, 4, 4\)"):
        sikd_loss(torch.randn(2, 3, 4, 4), torch.randn(2, 8, 4, 4), torch.randn(2, 16, 4, 4),
                  torch.randint(0, 3, (2, 4, 4)))


def test_mismatched_target_is_an_error():
    with pytest.raises(ValueError, match="target shape"):
        sikd_loss(torch.randn(2, 3, 4, 4), torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4),
                  torch.randint(0, 3, (2, 5, 4)))


def test_sikd_loss_value_check_can_be_skipped_for_validated_labels():
    from sikd_utils.distill import sikd_loss

    logits, feats = torch.randn(2, 3, 4, 4), torch.randn(2, 5, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    checked = sikd_loss(logits, feats, feats + 1, target)
    unchecked = sikd_loss(logits, feats, feats + 1, target, check_values=False)
    assert all(torch.equal(a, b) for a, b in zip(checked, unchecked))
    with pytest.raises(ValueError, match="target values must lie in"):
        sikd_loss(logits, feats, feats, target + 3)
