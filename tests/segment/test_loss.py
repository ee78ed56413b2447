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


def _confident(
    classes_by_pixel: torch.Tensor, n_classes: int = 6, big: float = 30.0
) -> torch.Tensor:
    """Logits that predict ``classes_by_pixel`` (H, W) with near certainty."""
    logits = torch.zeros(1, n_classes, *classes_by_pixel.shape)
    logits[0].scatter_(0, classes_by_pixel[None], big)
    return logits


def test_a_right_answer_on_an_unlabelled_class_costs_nothing_in_the_dice() -> None:
    """Vertebra set: group 0 = "not a body" (background, disc, sacrum, nucleus, canal),
    1 = body, 2 = sacrum (S1 only). Calling the unlabelled lower sacrum "sacrum" is right;
    the Dice of the sacrum group counted it as a false positive (loss 0.23 against 0)."""
    groups = [[(0, 2, 3, 4, 5), (1,), (3,)]]
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    target[:, 2:6, 2:10] = 1  # a body
    target[:, 8:11, 2:10] = 2  # S1
    lower_sacrum = (slice(11, 15), slice(2, 10))  # target 0: unlabelled
    truth = torch.tensor([0, 1, 3])[target[0]]
    as_background = truth.clone()
    as_sacrum = truth.clone()
    as_sacrum[lower_sacrum] = 3
    loss = MarginalDiceCELoss()
    a = loss(_confident(as_background), target, groups)
    b = loss(_confident(as_sacrum), target, groups)
    assert float(a) < 1e-3 and float(b) < 1e-3
    # the body group still counts group-0 pixels as negatives: "body" there is wrong
    as_body = truth.clone()
    as_body[lower_sacrum] = 1
    assert float(loss(_confident(as_body), target, groups)) > 0.1


def test_a_perfect_phantom_prediction_has_no_loss() -> None:
    """Phantom groups: background, vertebra = {background, body}, sacrum, disc, nucleus,
    canal. The {background, body} group's Dice counted every background pixel as a
    predicted positive: a perfect prediction cost 0.29."""
    groups = [[(0,), (0, 1), (3,), (2,), (4,), (5,)]]
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    target[:, 1:5, 2:12] = 1  # vertebra (body and posterior elements)
    target[:, 5:8, 2:12] = 3  # disc
    target[:, 6, 5:8] = 4  # nucleus
    target[:, 9:13, 2:12] = 2  # sacrum
    target[:, :, 13:15] = 5  # canal
    truth = torch.tensor([0, 1, 3, 2, 4, 5])[target[0]]
    loss = MarginalDiceCELoss()
    assert float(loss(_confident(truth), target, groups)) < 1e-3
    # and a wrong class inside the disc still costs
    wrong = truth.clone()
    wrong[5:8, 2:12] = 5
    assert float(loss(_confident(wrong), target, groups)) > 0.2


def test_the_v1_models_dice_is_kept_behind_a_switch() -> None:
    """``certain_pixels=False`` is the loss the previous model (v1) was trained with (so
    that ``configs/segment-v1.yaml`` reproduces it): a perfect phantom prediction costs 0.14 here
    (0.29 with the nucleus and sacrum of the other test), the new Dice nothing."""
    groups = [[(0,), (0, 1), (3,), (2,), (4,), (5,)]]
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    target[:, 1:5, 2:12] = 1
    target[:, 5:8, 2:12] = 3
    truth = torch.tensor([0, 1, 3, 2, 4, 5])[target[0]]
    old = MarginalDiceCELoss(certain_pixels=False)(_confident(truth), target, groups)
    assert float(old) > 0.1
    assert float(MarginalDiceCELoss()(_confident(truth), target, groups)) < 1e-3
