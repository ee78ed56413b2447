"""The 2D segmentation network and its marginal loss for partially labelled data.

Network: MONAI ``UNet`` (residual units) on sagittal slices: one channel, or three (the
slice between its neighbours, "2.5D") for a model trained with ``context_mm``. It is kept
small on purpose (about 0.8 M parameters, 1.7 MB in float16) so that it trains on a
laptop CPU and segments a 15-slice series in well under a second per slice.

Loss: each training image labels only some classes (the real disc set labels discs,
the vertebra set labels bodies, the phantom labels everything). A voxel's target is
therefore a *group* of network classes it may belong to ("not a disc" = background or
body or canal or sacrum). :class:`MarginalDiceCELoss` merges the softmax probabilities
of each group (the marginal loss of Shi et al., Med Image Anal 2021;70:101979) and
applies cross-entropy and MONAI's Dice loss to the merged probabilities. MONAI has no
loss for class groups that differ per sample (``DiceLoss`` masks voxels, not classes),
hence this thin wrapper; the Dice itself is MONAI's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.losses import DiceLoss
from monai.networks.nets import UNet

IGNORE = 255
CLASS_NAMES = ("background", "body", "disc", "sacrum", "nucleus", "canal")
"""Every class a network may have: the data loaders and the phantom teach these, and
:func:`discquant.segment.segment_spine` reads these (and no other) from the output."""
REQUIRED_CLASSES = ("background", "body", "disc")
"""Classes a network must have: inference fills empty pixels with background, and names
the levels from the bodies and discs."""


def classes_problem(classes: Sequence[str]) -> str | None:
    """Why ``classes`` cannot be a network's class list, or None when it can.

    Parameters
    ----------
    classes
        The class names, in output order (``classes`` of the segmentation config).

    Returns
    -------
    str or None
        One line naming the unknown, repeated or missing names and the valid ones.
    """
    unknown = [c for c in classes if c not in CLASS_NAMES]
    twice = sorted({c for c in classes if list(classes).count(c) > 1})
    missing = [c for c in REQUIRED_CLASSES if c not in classes]
    for what, names in (("unknown", unknown), ("repeated", twice), ("missing", missing)):
        if names:
            return (
                f"{what} {', '.join(map(str, names))}: classes are distinct names of "
                f"{', '.join(CLASS_NAMES)}, with at least {', '.join(REQUIRED_CLASSES)}"
            )
    return None


def build_network(
    *,
    n_classes: int,
    channels: Sequence[int] = (16, 32, 64, 128, 256),
    num_res_units: int = 1,
    dropout: float = 0.0,
    in_channels: int = 1,
) -> torch.nn.Module:
    """MONAI 2D U-Net with ``in_channels`` inputs and ``n_classes`` outputs (logits)."""
    return UNet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=n_classes,
        channels=tuple(channels),
        strides=tuple([2] * (len(channels) - 1)),
        num_res_units=num_res_units,
        dropout=dropout,
    )


def network_from_meta(meta: dict[str, Any]) -> torch.nn.Module:
    """Rebuild the network described by a checkpoint's ``meta``."""
    return build_network(
        n_classes=len(meta["classes"]),
        channels=meta["channels"],
        num_res_units=meta["num_res_units"],
        in_channels=input_channels(meta),
    )


def input_channels(meta: dict[str, Any]) -> int:
    """1 for a single-slice model, 3 for one with slice context (``context_mm`` > 0)."""
    return 3 if float(meta.get("context_mm") or 0.0) > 0 else 1


def dice_pixels(
    groups: Sequence[Sequence[int]], gi: int, *, certain: bool = True
) -> tuple[list[int], list[int]]:
    """Target groups whose pixels are positives and negatives for group ``gi``'s Dice.

    A pixel whose target group lies inside group ``gi`` is a positive; one whose target
    group shares no class with it is a negative; a pixel whose target group only
    overlaps it (e.g. the "not a body" group of the vertebra set, which holds the sacrum
    class, for the sacrum group) may or may not belong to it and is left out. Counting
    such pixels as negatives punished correct predictions: "sacrum" on the unlabelled
    lower sacrum of the vertebra set, "body" wherever the phantom's background is.
    ``certain=False`` is that earlier rule, which the previous model (v1) was trained with:
    only group ``gi`` itself is positive, every other group negative.
    """
    if not certain:
        return [gi], [j for j in range(len(groups)) if j != gi]
    member = set(groups[gi])
    pos = [j for j, t in enumerate(groups) if set(t) <= member]
    neg = [j for j, t in enumerate(groups) if not set(t) & member]
    return pos, neg


def dice_groups(groups: Sequence[Sequence[int]], *, certain: bool = True) -> list[int]:
    """The groups that get a Dice term: not group 0 and none that holds the background
    class (index 0), as ``include_background=False`` leaves background out
    (``certain=False``, v1's rule: every group but 0)."""
    return [gi for gi, g in enumerate(groups) if gi > 0 and (0 not in g or not certain)]


class MarginalDiceCELoss(torch.nn.Module):
    """Dice + cross-entropy on class groups that may differ from sample to sample.

    ``forward(logits, target, groups)``: ``logits`` ``(B, C, H, W)``; ``target``
    ``(B, H, W)`` integer group index per pixel (:data:`IGNORE` = no loss there);
    ``groups[b]`` the list of groups of sample ``b``, each a tuple of class indices.
    Group 0 is the sample's background group; it and any group holding the background
    class are left out of the Dice term (as ``include_background=False`` does). Each
    group's Dice counts only the pixels whose label is certain about it
    (:func:`dice_pixels`). With singleton groups this is plain DiceCE.
    """

    def __init__(
        self, *, dice_weight: float = 1.0, ce_weight: float = 1.0, certain_pixels: bool = True
    ) -> None:
        super().__init__()
        self.dice_weight = dice_weight
        self.ce_weight = ce_weight
        self.certain_pixels = certain_pixels
        """False: the Dice of v1's training (groups other than 0 scored,
        every pixel outside a group counted as a negative; see :func:`dice_pixels`)."""
        self.dice = DiceLoss(include_background=True, softmax=False, to_onehot_y=False)

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        groups: Sequence[Sequence[Sequence[int]]],
    ) -> torch.Tensor:
        logp = torch.log_softmax(logits, dim=1)
        ce_terms = []
        dice_terms = []
        for b in range(logits.shape[0]):
            g = groups[b]
            merged_logp = torch.stack(
                [torch.logsumexp(logp[b, list(classes)], dim=0) for classes in g]
            )  # (G, H, W)
            tgt = target[b].long()
            valid = tgt != IGNORE
            if valid.any():
                safe = torch.where(valid, tgt, torch.zeros_like(tgt))
                nll = -merged_logp.gather(0, safe[None])[0]
                ce_terms.append(nll[valid].mean())
            scored = dice_groups(g, certain=self.certain_pixels)
            if scored:
                prob, truth = [], []
                for gi in scored:
                    pos, neg = dice_pixels(g, gi, certain=self.certain_pixels)
                    is_pos = torch.isin(tgt, torch.tensor(pos)) & valid
                    counted = is_pos | (torch.isin(tgt, torch.tensor(neg)) & valid)
                    prob.append(merged_logp[gi].exp() * counted)
                    truth.append(is_pos.float())
                dice_terms.append(self.dice(torch.stack(prob)[None], torch.stack(truth)[None]))
        ce = torch.stack(ce_terms).mean() if ce_terms else logits.sum() * 0
        dice = torch.stack(dice_terms).mean() if dice_terms else logits.sum() * 0
        return self.ce_weight * ce + self.dice_weight * dice
