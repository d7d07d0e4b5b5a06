"""A tiny in-memory operator-learning problem for the training tests: the antiderivative of
random trigonometric polynomials at 16 points."""

import math

import torch


class AntiderivativeData(torch.utils.data.Dataset):
    def __init__(self, count: int, seed: int, points: int = 16):
        g = torch.Generator().manual_seed(seed)
        x = torch.linspace(0, 1, points)
        a = torch.randn(count, 3, generator=g)
        k = torch.arange(1, 4) * math.pi
        self.u = (a[:, :, None] * torch.cos(k[None, :, None] * x)).sum(1)
        self.s = (a[:, :, None] * torch.sin(k[None, :, None] * x) / k[None, :, None]).sum(1)
        self.field_info = {"u": {"role": "input"}, "s": {"role": "output"}}

    def __len__(self):
        return len(self.u)

    def __getitem__(self, i):
        return {"u": self.u[i], "s": self.s[i]}
