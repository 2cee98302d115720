"""Fixtures shared by the unit tests."""

import pytest
import torch

from damlib import config
from damlib import memory as am


@pytest.fixture(autouse=True)
def seeded():
    """Seed torch's global generator before every test, so that a test's random inputs do not depend on
    which tests ran before it (damlib itself always takes explicit generators)."""
    torch.manual_seed(0)


@pytest.fixture
def float64():
    """Run a test with float64 as torch's default dtype (the linear memory is studied in float64)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture
def memory_problem(float64):
    """A small linear-memory problem with d < N, so embeddings are correlated: ``E (7, 4)``, ``U (3, 4)``,
    Zipf frequencies ``p (7,)`` and ``targets (7,)``, in float64."""
    gen = config.generator(0)
    n, m, d = 7, 3, 4
    E = am.sphere_embeddings(n, d, generator=gen)
    U = am.sphere_embeddings(m, d, generator=gen)
    return E, U, am.zipf_frequencies(n), torch.arange(n) % m


@pytest.fixture(autouse=True)
def device_discipline(request):
    """Every unit test runs under damlib.device_audit.FactoryAudit: a damlib factory call without device=
    (which on a GPU run would put the tensor on the CPU, away from its inputs) fails the test."""
    from damlib.device_audit import FactoryAudit

    if request.node.get_closest_marker("no_device_audit"):
        yield
        return
    audit = FactoryAudit()
    with audit:
        yield
    assert not audit.calls, f"damlib created tensors without device=: {sorted(set(audit.calls))}"
