"""Tiny conv nets and hook counting shared by the core tests (CPU, milliseconds).

Test modules import these from here, not from ``conftest``: when pytest runs several test folders at once, the
name ``conftest`` means whichever folder's conftest was loaded last (tests/app's, in
``pytest tests/core tests/models tests/app``), and ``from conftest import tiny_net`` failed to import.
"""

import torch
from torch import nn


def tiny_net(num_classes: int = 4, inplace: bool = True) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(inplace=inplace),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(inplace=inplace),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(inplace=inplace),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, num_classes),
    )


def hook_count(model: nn.Module) -> int:
    return sum(
        len(getattr(m, attr))
        for m in model.modules()
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    )
