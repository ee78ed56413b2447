"""Averaging several grading networks and small test-time shifts (probabilities, not logits)."""

from __future__ import annotations

import torch


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
                xs = torch.roll(x, shifts=(dr, dc), dims=(2, 3)) if (dr or dc) else x
                probs.append(torch.softmax(net(xs), dim=1))
        return torch.log(torch.stack(probs).mean(0).clamp_min(1e-12))
