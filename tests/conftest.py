"""Fixtures shared by the unit tests."""

import pytest
import torch


@pytest.fixture
def float64():
    """Run a test with float64 as torch's default dtype (the linear memory is studied in float64)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)
