"""The sharpness probe measures on clean labels, as the paper does: a run with noisy training
labels (``label_noise``, and the synthetic sets' own 10%) keeps the labels before the noise in
``DatasetTensors.train_y_clean``, and ``build_run``'s probe batch carries them."""

from __future__ import annotations

import torch
from support.configs import tiny_config

from samon_core.train.data import load_dataset
from samon_core.train.data.synthetic import SyntheticSpec, make_synthetic
from samon_core.train.setup import build_run


def test_the_synthetic_set_keeps_the_classes_it_drew_beside_its_noisy_labels():
    noisy = make_synthetic(n_train=2000, n_test=100, num_classes=10)
    clean = make_synthetic(n_train=2000, n_test=100, num_classes=10,
                           spec=SyntheticSpec(label_noise=0.0))
    assert torch.equal(noisy.train_y_clean, clean.train_y)  # the drawn classes
    assert 0.06 < (noisy.train_y != noisy.train_y_clean).float().mean().item() < 0.14
    assert torch.equal(clean.clean_train_labels(), clean.train_y)


def test_label_noise_keeps_the_clean_labels_of_the_same_subset():
    plain = load_dataset("synthetic10", train_subset=600, test_subset=50, seed=3)
    noisy = load_dataset("synthetic10", train_subset=600, test_subset=50, seed=3, label_noise=0.4)
    assert torch.equal(noisy.train_x, plain.train_x)
    assert torch.equal(noisy.clean_train_labels(), plain.clean_train_labels())
    wrong = (noisy.train_y != noisy.clean_train_labels()).float().mean().item()
    assert 0.4 <= wrong < 0.5  # 40% replaced, on top of the set's own ~10%
    assert len(noisy.clean_train_labels()) == 600


def test_the_probe_batch_carries_the_clean_labels_of_the_first_images(tmp_path):
    config = tiny_config(dataset="synthetic10", label_noise=0.4, sharpness_samples=128,
                         train_subset=256)
    setup = build_run(config, tmp_path)
    data = load_dataset("synthetic10", train_subset=256, test_subset=128, seed=config.seed,
                        label_noise=0.4)
    x, y = setup.probe
    assert x.shape[0] == 128
    assert torch.equal(y.cpu(), data.clean_train_labels()[:128])
    assert not torch.equal(y.cpu(), data.train_y[:128])  # not the noisy labels it trains on
