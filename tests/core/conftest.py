"""Fixtures shared by the core tests; the nets themselves live in core_helpers.py (see there why)."""

import pytest
import torch
from torch import nn

from tests.core.core_helpers import hook_count, tiny_net

__all__ = ["hook_count", "images", "net", "tiny_net"]  # hook_count/tiny_net: kept importable from here too


@pytest.fixture
def net() -> nn.Sequential:
    return tiny_net()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
