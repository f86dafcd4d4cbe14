"""scikit-learn's handwritten digits as a dataset (samon_core.train.data.digits): the catalog's
sizes, real labels in the fixed split, the 32x32 RGB format the pipeline needs, determinism, and
a clear error when scikit-learn is missing."""

from __future__ import annotations

import builtins

import pytest
import torch

from samon_core.catalog import DATASETS
from samon_core.runs.config import RunConfig
from samon_core.train.data import DatasetUnavailable, DeviceLoader, load_dataset
from samon_core.train.data import digits as digits_module


@pytest.fixture(scope="module")
def sklearn_datasets():
    # only the tests of the data need scikit-learn; the missing-package error is tested without
    return pytest.importorskip("sklearn.datasets")


@pytest.fixture(scope="module")
def digits(sklearn_datasets):
    return load_dataset("digits")


def test_sizes_are_the_catalogs_and_every_image_is_used_once(digits, sklearn_datasets):
    spec = DATASETS["digits"]
    assert (len(digits.train_y), len(digits.test_y)) == (spec.train_size, spec.test_size)
    assert spec.train_size + spec.test_size == 1797 and spec.num_classes == 10
    assert digits.train_x.shape == (spec.train_size, 3, 32, 32)
    assert digits.test_x.shape == (spec.test_size, 3, 32, 32)
    assert digits.train_x.dtype == torch.uint8 and digits.train_y.dtype == torch.int64
    # no image in both splits: the split is a permutation of all 1,797
    pool = torch.cat([digits.train_x, digits.test_x]).flatten(1)
    assert torch.unique(pool, dim=0).shape[0] == len(
        torch.unique(torch.as_tensor(sklearn_datasets.load_digits().images).flatten(1), dim=0))


def test_labels_are_scikit_learns_for_the_same_images(digits, sklearn_datasets):
    raw = sklearn_datasets.load_digits()
    images = digits_module.to_uint8_rgb(torch.as_tensor(raw.images, dtype=torch.float32))
    target = torch.as_tensor(raw.target)
    # find each training image among the originals and compare labels (real, not shuffled)
    for i in (0, 1, 500, 999):
        match = (images == digits.train_x[i]).flatten(1).all(dim=1).nonzero().flatten()
        assert len(match) >= 1 and (target[match] == digits.train_y[i]).all()
    assert set(digits.train_y.tolist()) == set(range(10)) == set(digits.test_y.tolist())
    assert not digits.synthetic and "real" in digits.source and "not CIFAR" in digits.source
    assert "NOT CIFAR" in DATASETS["digits"].label and not DATASETS["digits"].synthetic


def test_upsampling_keeps_the_digit_and_grey_levels():
    # one bright pixel at (2, 5) of 8x8 lands near (2.5 * 4 - 0.5, 5.5 * 4 - 0.5) in 32x32
    img = torch.zeros(1, 8, 8)
    img[0, 2, 5] = 16.0
    out = digits_module.to_uint8_rgb(img)
    assert out.shape == (1, 3, 32, 32) and out.dtype == torch.uint8
    assert (out[:, 0] == out[:, 1]).all() and (out[:, 0] == out[:, 2]).all()  # grey in RGB
    peak = divmod(int(out[0, 0].argmax()), 32)
    assert 8 <= peak[0] <= 11 and 20 <= peak[1] <= 23
    # the grey scale: 0 stays black, a full 16 is white (a lone pixel is blurred below it)
    assert int(digits_module.to_uint8_rgb(torch.full((1, 8, 8), 16.0)).min()) == 255
    assert int(digits_module.to_uint8_rgb(torch.zeros(1, 8, 8)).max()) == 0
    assert 128 < int(out.max()) < 255


def test_deterministic_subsets_and_label_noise(digits):
    a = load_dataset("digits", train_subset=300, test_subset=100, seed=3, label_noise=0.4)
    b = load_dataset("digits", train_subset=300, test_subset=100, seed=3, label_noise=0.4)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.train_y, b.train_y)
    assert torch.equal(a.test_x, b.test_x)
    assert (a.train_y != a.train_y_clean).sum() == 120  # exactly 40% replaced
    assert torch.equal(load_dataset("digits").train_x, digits.train_x)


def test_the_loader_and_a_run_config_accept_it(digits):
    x, y = next(iter(DeviceLoader(digits, "cpu", 64, train=True, augment="crop_flip")))
    assert x.shape == (64, 3, 32, 32) and x.dtype == torch.float32
    assert RunConfig(dataset="digits", train_subset=1000, test_subset=797).dataset == "digits"
    with pytest.raises(ValueError, match="train_subset"):
        RunConfig(dataset="digits", train_subset=1001)


def test_missing_scikit_learn_is_a_clear_error(monkeypatch):
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(DatasetUnavailable, match="pip install scikit-learn"):
        load_dataset("digits")
