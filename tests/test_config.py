import pytest
import torch

from damlib import config


def test_scale_default_and_choice(monkeypatch):
    monkeypatch.delenv("DAMLIB_SCALE", raising=False)
    assert config.scale() == "book"
    for name in config.SCALES:
        monkeypatch.setenv("DAMLIB_SCALE", name)
        assert config.scale() == name
        assert config.by_scale(ci=1, book=2, paper=3) == {"ci": 1, "book": 2, "paper": 3}[name]


def test_unknown_scale_names_the_three(monkeypatch):
    monkeypatch.setenv("DAMLIB_SCALE", "huge")
    with pytest.raises(ValueError, match="DAMLIB_SCALE.*ci, book, paper"):
        config.scale()


def test_device_auto_and_override(monkeypatch):
    monkeypatch.delenv("DAMLIB_DEVICE", raising=False)
    assert config.device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("DAMLIB_DEVICE", "cpu")
    assert config.device() == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "tpu"])
def test_bad_device(monkeypatch, name):
    monkeypatch.setenv("DAMLIB_DEVICE", name)
    with pytest.raises(ValueError, match="DAMLIB_DEVICE"):
        config.device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda(monkeypatch):
    monkeypatch.setenv("DAMLIB_DEVICE", "cuda")
    with pytest.raises(ValueError, match="no CUDA"):
        config.device()


def test_generator_is_reproducible():
    a = torch.randn(5, generator=config.generator(3))
    b = torch.randn(5, generator=config.generator(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, torch.randn(5, generator=config.generator(4)))


@pytest.mark.parametrize("seed", [-1, 1.5, "1", True])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        config.generator(seed)
