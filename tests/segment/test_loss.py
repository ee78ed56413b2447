"""The marginal Dice+CE loss for partially labelled images, on tiny examples."""

from __future__ import annotations

import torch
from monai.losses import DiceCELoss

from discquant.segment.network import IGNORE, MarginalDiceCELoss


def _logits(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 4, 8, 8, generator=g)


def test_singleton_groups_equal_monai_dice_ce() -> None:
    logits = _logits()
    target = torch.randint(0, 4, (1, 8, 8), generator=torch.Generator().manual_seed(1))
    ours = MarginalDiceCELoss()(logits, target, [[(0,), (1,), (2,), (3,)]])
    ref = DiceCELoss(include_background=False, to_onehot_y=True, softmax=True)(
        logits, target[:, None]
    )
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


def test_unlabelled_classes_are_not_background() -> None:
    """Group 0 = {background, body}: calling those pixels 'body' costs nothing extra."""
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[:, 2:5, 2:5] = 1  # disc
    groups = [[(0, 1, 3), (2,)]]
    big = 20.0
    as_background = torch.zeros(1, 4, 8, 8)
    as_background[:, 0] = big
    as_background[:, 2][target == 1] = 2 * big
    as_body = torch.zeros(1, 4, 8, 8)
    as_body[:, 1] = big
    as_body[:, 2][target == 1] = 2 * big
    loss = MarginalDiceCELoss()
    a, b = loss(as_background, target, groups), loss(as_body, target, groups)
    torch.testing.assert_close(a, b)
    assert float(a) < 1e-3
    # ... whereas a plain (unmasked) loss would punish the body prediction.
    plain = [[(0,), (1,), (2,), (3,)]]
    assert float(loss(as_body, target, plain)) > 1.0


def test_ignored_pixels_do_not_count() -> None:
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[:, 2:5, 2:5] = 1
    target[:, :, 6:] = IGNORE
    logits = _logits(3)
    other = logits.clone()
    other[..., 6:] = torch.randn(1, 4, 8, 2, generator=torch.Generator().manual_seed(9)) * 5
    loss = MarginalDiceCELoss()
    groups = [[(0, 1, 3), (2,)]]
    torch.testing.assert_close(loss(logits, target, groups), loss(other, target, groups))
