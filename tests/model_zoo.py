"""Small importable models for registry tests (a state_dict needs importable code)."""

from __future__ import annotations

import torch


class TinyNet(torch.nn.Module):
    def __init__(self, n_features: int = 4, hidden: int = 8) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(n_features, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class NotAModule:
    pass
