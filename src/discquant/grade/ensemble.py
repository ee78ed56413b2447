"""Averaging several grading networks and small test-time shifts (probabilities, not logits)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def shift_crops(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Move a batch of crops (N, C, H, W) by whole pixels, repeating the border pixels.

    Content moves down by ``rows`` and right by ``cols`` (negative: up, left). The
    uncovered edge repeats the nearest border row or column, as training's
    ``RandAffine(padding_mode="border")`` fills it. (``torch.roll`` would wrap the
    opposite edge around, an image the network never saw in training.)
    """
    h, w = x.shape[-2:]
    if abs(rows) >= h or abs(cols) >= w:
        raise ValueError(f"a shift of ({rows}, {cols}) pixels leaves nothing of a {h}×{w} crop")
    pad = (max(cols, 0), max(-cols, 0), max(rows, 0), max(-rows, 0))  # left, right, top, bottom
    padded = F.pad(x, pad, mode="replicate")
    r0, c0 = max(-rows, 0), max(-cols, 0)
    return padded[..., r0 : r0 + h, c0 : c0 + w]


class GradeEnsemble(torch.nn.Module):
    """Mean softmax over member networks and over crop shifts (rows, columns in pixels).

    ``forward`` returns the log of the mean probability, so ``softmax(forward(x))`` is
    the averaged probability and the module drops in where a single network was used.
    """

    def __init__(
        self, members: list[torch.nn.Module], shifts: list[tuple[int, int]] | None = None
    ) -> None:
        super().__init__()
        self.members = torch.nn.ModuleList(members)
        self.shifts = [tuple(s) for s in (shifts or [(0, 0)])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = []
        for net in self.members:
            for dr, dc in self.shifts:
                xs = shift_crops(x, dr, dc) if (dr or dc) else x
                probs.append(torch.softmax(net(xs), dim=1))
        return torch.log(torch.stack(probs).mean(0).clamp_min(1e-12))
