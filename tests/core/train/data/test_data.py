"""samon_core.train.data: CIFAR loading through the real code path (on generated torchvision-format
folders), the synthetic set, and the on-device batches against slow per-image references."""

from __future__ import annotations

import pickle
import socket
import urllib.error

import numpy as np
import pytest
import torch
from support.cifar import write_cifar_like

from samon_core.train.data import DatasetTensors, DatasetUnavailable, DeviceLoader, load_dataset
from samon_core.train.data.autoaugment import autoaugment_uint8
from samon_core.train.data.cifar import CIFAR10_MEAN, CIFAR100_MEAN
from samon_core.train.data.datasets import subset_indices
from samon_core.train.data.loader import batch_seed, epoch_seed
from samon_core.train.data.synthetic import (
    SYNTHETIC_TEST,
    SYNTHETIC_TRAIN,
    SyntheticSpec,
    make_synthetic,
)


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_cifar_like(root, "cifar100", n_train=300, n_test=120, seed=1)
    write_cifar_like(root, "cifar10", n_train=250, n_test=60, seed=2)
    return root


def _tiny_dataset(n: int = 40, seed: int = 0) -> DatasetTensors:
    """Random images; the label of image i is i, so batches reveal which images they hold."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.arange(n)
    return DatasetTensors(x, y, x[:13].clone(), y[:13].clone(), n, (0.5, 0.4, 0.3),
                            (0.25, 0.2, 0.3), "tiny", True, "test data")


# --- CIFAR ---------------------------------------------------------------------------------


def test_writer_uses_torchvisions_file_names(cifar_root):
    from torchvision.datasets import CIFAR10, CIFAR100

    for cls in (CIFAR100, CIFAR10):
        names = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
        for f in names:
            assert (cifar_root / cls.base_folder / f).is_file()


@pytest.mark.parametrize("name,n_train,n_test,classes", [("cifar100", 300, 120, 100),
                                                        ("cifar10", 250, 60, 10)])
def test_fake_cifar_loads_through_own_reader(cifar_root, name, n_train, n_test, classes):
    d = load_dataset(name, cifar_root, download=False)
    assert d.train_x.shape == (n_train, 3, 32, 32) and d.train_x.dtype == torch.uint8
    assert d.test_x.shape == (n_test, 3, 32, 32) and d.test_x.dtype == torch.uint8
    assert d.train_y.dtype == torch.int64 and d.train_y.shape == (n_train,)
    assert int(d.train_y.min()) >= 0 and int(d.train_y.max()) < classes
    assert d.num_classes == classes and len(d.class_names) == classes
    assert not d.synthetic and d.name == name
    assert "not the official" in d.source and str(cifar_root) in d.source
    assert d.mean == (CIFAR100_MEAN if name == "cifar100" else CIFAR10_MEAN)
    # The written images come back unchanged (writer and reader agree on the byte layout).
    ref = make_synthetic(n_train, n_test, num_classes=classes,
                           seed=1 if name == "cifar100" else 2)
    assert torch.equal(d.train_x, ref.train_x) and torch.equal(d.train_y, ref.train_y)
    assert torch.equal(d.test_x, ref.test_x) and torch.equal(d.test_y, ref.test_y)


def test_torchvision_refuses_fakes_and_our_reader_matches_it(cifar_root, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    with pytest.raises(RuntimeError, match="not found or corrupted"):
        tv_cifar.CIFAR100(root=str(cifar_root), train=True, download=False)
    ours = load_dataset("cifar100", cifar_root, download=False)
    # Pretend the md5s match: now torchvision itself loads the files.
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    theirs = load_dataset("cifar100", cifar_root, download=False)
    assert theirs.source.startswith("torchvision CIFAR100 from")
    for f in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(ours, f), getattr(theirs, f)), f
    assert ours.class_names == theirs.class_names


def test_cifar100_normalisation_is_the_references():
    from samon_core.train.data.cifar import CIFAR100_STD

    assert CIFAR100_MEAN == (0.5071, 0.4867, 0.4408)
    assert CIFAR100_STD == (0.2675, 0.2565, 0.2761)


def test_pickles_have_torchvision_layout(cifar_root):
    with open(cifar_root / "cifar-100-python" / "train", "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    assert entry["data"].shape == (300, 3072) and entry["data"].dtype == np.uint8
    assert len(entry["fine_labels"]) == len(entry["coarse_labels"]) == 300


def test_subsets_are_deterministic_and_nested(cifar_root):
    full = load_dataset("cifar100", cifar_root, download=False)
    a = load_dataset("cifar100", cifar_root, train_subset=50, test_subset=20, seed=3,
                       download=False)
    b = load_dataset("cifar100", cifar_root, train_subset=50, test_subset=20, seed=3,
                       download=False)
    c = load_dataset("cifar100", cifar_root, train_subset=50, seed=4, download=False)
    assert a.train_x.shape[0] == 50 and a.test_x.shape[0] == 20
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.train_x, c.train_x)
    idx = subset_indices(300, 50, 3)
    assert torch.equal(a.train_x, full.train_x[idx]) and torch.equal(a.train_y, full.train_y[idx])
    assert set(idx.tolist()) <= set(subset_indices(300, 80, 3).tolist())  # nested
    with pytest.raises(ValueError, match="only 300"):
        load_dataset("cifar100", cifar_root, train_subset=301, download=False)


def test_missing_files_without_download(tmp_path):
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("cifar100", tmp_path / "nowhere", download=False)
    msg = str(err.value)
    assert str(tmp_path / "nowhere" / "cifar-100-python") in msg
    assert "cifar-100-python.tar.gz" in msg and "train, test, meta" in msg
    assert "synthetic" in msg
    assert isinstance(err.value, ValueError)


def test_partial_folder_is_missing(tmp_path):
    write_cifar_like(tmp_path, "cifar10", 20, 10)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetUnavailable, match="data_batch_1"):
        load_dataset("cifar10", tmp_path, download=False)


def test_failed_download_is_reported(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    calls = []

    def offline(url, *args, **kwargs):
        calls.append((url, socket.getdefaulttimeout()))
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    before = socket.getdefaulttimeout()
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("cifar10", tmp_path, download=True)
    assert calls and calls[0][0].endswith("cifar-10-python.tar.gz")
    assert calls[0][1] == 30.0 and socket.getdefaulttimeout() == before  # bounded, then restored
    msg = str(err.value)
    assert "download failed" in msg and "network is unreachable" in msg
    assert str(tmp_path / "cifar-10-batches-py") in msg and "synthetic" in msg


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet", "data")


# --- synthetic -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic()


def test_synthetic_is_deterministic_and_labelled(synthetic):
    a = load_dataset("synthetic", "/nonexistent", train_subset=500, test_subset=100, seed=1)
    assert a.synthetic and a.name == "synthetic" and a.source.startswith("SYNTHETIC")
    assert a.train_x.shape == (500, 3, 32, 32) and a.train_x.dtype == torch.uint8
    assert a.test_x.shape == (100, 3, 32, 32) and a.num_classes == 100
    idx = subset_indices(SYNTHETIC_TRAIN, 500, 1)  # regenerated: identical images
    assert torch.equal(a.train_x, synthetic.train_x[idx])
    assert torch.equal(a.train_y, synthetic.train_y[idx])
    assert a.train_y.dtype == torch.int64
    assert 0 <= int(a.train_y.min()) <= int(a.train_y.max()) < 100
    assert len(a.mean) == len(a.std) == 3 and all(0.1 < s < 0.5 for s in a.std)


def test_synthetic_full_size_balance_and_label_noise(synthetic):
    d = synthetic
    assert d.train_x.shape[0] == SYNTHETIC_TRAIN and d.test_x.shape[0] == SYNTHETIC_TEST
    assert torch.bincount(d.test_y, minlength=100).tolist() == [20] * 100  # clean, balanced
    clean = make_synthetic(spec=SyntheticSpec(label_noise=0.0))
    assert torch.equal(clean.train_x, d.train_x) and torch.equal(clean.test_x, d.test_x)
    flipped = (clean.train_y != d.train_y).float().mean().item()
    assert 0.08 < flipped < 0.12
    # The pixels use the range without saturating much.
    assert (d.train_x == 0).float().mean() < 0.05 and (d.train_x == 255).float().mean() < 0.05


# --- DeviceLoader --------------------------------------------------------------------------


def test_lengths_and_drop_last():
    d = _tiny_dataset(40)
    tr = DeviceLoader(d, "cpu", 16, train=True, seed=0)
    te = DeviceLoader(d, "cpu", 5, train=False)
    assert len(tr) == 2 and len(list(tr.epoch_batches(0))) == 2
    assert len(te) == 3
    sizes = [x.shape[0] for x, _ in te.epoch_batches(0)]
    assert sizes == [5, 5, 3]  # 13 test images, last partial batch kept
    ids = torch.cat([y for _, y in te])
    assert ids.tolist() == list(range(13))  # eval: in order


def test_train_order_is_a_seeded_permutation_per_epoch():
    d = _tiny_dataset(40)
    tr = DeviceLoader(d, "cpu", 8, train=True, seed=5)
    other = DeviceLoader(d, "cpu", 8, train=True, seed=5)
    e0 = [(x, y) for x, y in tr.epoch_batches(0)]
    assert sorted(torch.cat([y for _, y in e0]).tolist()) == list(range(40))
    for (xa, ya), (xb, yb) in zip(e0, other.epoch_batches(0), strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    e1 = torch.cat([y for _, y in tr.epoch_batches(1)])
    assert not torch.equal(e1, torch.cat([y for _, y in e0]))
    seed6 = torch.cat([y for _, y in DeviceLoader(d, "cpu", 8, train=True, seed=6)])
    assert not torch.equal(seed6, torch.cat([y for _, y in e0]))
    tr.set_epoch(1)
    assert torch.equal(torch.cat([y for _, y in tr]), e1)


def _slow_crop_flip(img: np.ndarray, top: int, left: int, flip: bool) -> np.ndarray:
    """Reference: zero-pad one (3, 32, 32) image by 4, take the window, mirror it."""
    padded = np.pad(img, ((0, 0), (4, 4), (4, 4)))
    out = padded[:, top:top + 32, left:left + 32]
    return out[:, :, ::-1] if flip else out


def _unnormalize(x: torch.Tensor, d: DatasetTensors) -> np.ndarray:
    m = torch.tensor(d.mean).view(1, 3, 1, 1)
    s = torch.tensor(d.std).view(1, 3, 1, 1)
    return ((x * s + m) * 255).round().to(torch.uint8).numpy()


def test_crop_flip_matches_slow_reference():
    d = _tiny_dataset(40)
    tr = DeviceLoader(d, "cpu", 20, train=True, augment="crop_flip", seed=2)
    order, top, left, flip = tr.epoch_plan(3)
    xs, ys = zip(*tr.epoch_batches(3), strict=True)
    x, y = _unnormalize(torch.cat(xs), d), torch.cat(ys)
    assert torch.equal(y, order)
    assert len(set(zip(top.tolist(), left.tolist(), strict=True))) > 10 and 0 < flip.sum() < 40
    for i in range(40):
        ref = _slow_crop_flip(d.train_x[order[i]].numpy(), int(top[i]), int(left[i]),
                              bool(flip[i]))
        assert np.array_equal(x[i], ref), i
    # Independently of the plan: each output is one of the 81 x 2 shifted/mirrored copies.
    for i in range(5):
        src = d.train_x[order[i]].numpy()
        assert any(np.array_equal(x[i], _slow_crop_flip(src, t, lft, f))
                   for t in range(9) for lft in range(9) for f in (False, True))


def test_flip_only_and_none():
    d = _tiny_dataset(40)
    fl = DeviceLoader(d, "cpu", 40, train=True, augment="flip", seed=1)
    order, _, _, flip = fl.epoch_plan(0)
    x = _unnormalize(next(iter(fl))[0], d)
    for i in range(40):
        src = d.train_x[order[i]].numpy()
        assert np.array_equal(x[i], src[:, :, ::-1] if flip[i] else src)
    no = DeviceLoader(d, "cpu", 40, train=True, augment="none", seed=1)
    x = _unnormalize(next(iter(no))[0], d)
    assert np.array_equal(x, d.train_x[order].numpy())


def test_normalization_and_dtypes(synthetic):
    idx = subset_indices(SYNTHETIC_TRAIN, 1000, 0)
    d = DatasetTensors(synthetic.train_x[idx], synthetic.train_y[idx], synthetic.test_x,
                         synthetic.test_y, 100, synthetic.mean, synthetic.std, "synthetic", True,
                         synthetic.source)
    ev = DeviceLoader(d, "cpu", 256, train=False, split="train")
    x = torch.cat([xb for xb, _ in ev])
    assert x.dtype == torch.float32 and x.shape == (1000, 3, 32, 32)
    expect = (d.train_x.float() / 255 - torch.tensor(d.mean).view(1, 3, 1, 1)) \
        / torch.tensor(d.std).view(1, 3, 1, 1)
    assert torch.allclose(x, expect, atol=1e-5)
    # The dataset's own mean/std (from the full training split) standardise a subset roughly.
    assert x.mean(dim=(0, 2, 3)).abs().max() < 0.1
    assert (x.std(dim=(0, 2, 3)) - 1).abs().max() < 0.1
    cl = DeviceLoader(d, "cpu", 64, train=True, seed=0, channels_last=True, dtype=torch.bfloat16)
    xb, yb = next(iter(cl))
    assert xb.dtype == torch.bfloat16 and yb.dtype == torch.int64 and xb.shape == (64, 3, 32, 32)
    assert xb.is_contiguous(memory_format=torch.channels_last)


def _autoaugment_batches(d, seed, epoch, batch_size=20):
    return list(DeviceLoader(d, "cpu", batch_size, train=True, augment="autoaugment",
                             seed=seed).epoch_batches(epoch))


def test_autoaugment_is_crop_flip_then_torchvisions_policy_per_image():
    """Same plan as crop_flip (order, crops, flips), then per image torchvision's AutoAugment
    (CIFAR-10 policy, the reference's grey fill), its draws seeded by batch_seed(seed, epoch, i)."""
    from torchvision.transforms import v2

    d = _tiny_dataset(40)
    plain = list(DeviceLoader(d, "cpu", 20, train=True, augment="crop_flip", seed=4)
                 .epoch_batches(2))
    auto = _autoaugment_batches(d, seed=4, epoch=2)
    policy = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10, fill=128)
    changed = 0
    for i, ((xp, yp), (xa, ya)) in enumerate(zip(plain, auto, strict=True)):
        assert torch.equal(yp, ya)  # same order: the plan does not depend on augment
        cropped = torch.from_numpy(_unnormalize(xp, d))
        torch.manual_seed(batch_seed(4, 2, i))
        expect = torch.stack([policy(img) for img in cropped])
        got = _unnormalize(xa, d)
        assert np.array_equal(got, expect.numpy()), i
        changed += sum(not np.array_equal(got[j], cropped[j].numpy()) for j in range(len(got)))
    assert changed > 10  # the policy did change most images


def test_autoaugment_batches_are_deterministic_per_seed_and_epoch():
    d = _tiny_dataset(40)
    first = _autoaugment_batches(d, seed=7, epoch=0)
    again = _autoaugment_batches(d, seed=7, epoch=0)
    for (xa, ya), (xb, yb) in zip(first, again, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    x0 = torch.cat([x for x, _ in first])
    assert not torch.equal(x0, torch.cat([x for x, _ in _autoaugment_batches(d, 7, 1)]))
    assert not torch.equal(x0, torch.cat([x for x, _ in _autoaugment_batches(d, 8, 0)]))
    # a batch depends on (seed, epoch, batch index) only, not on what was drawn before it
    torch.manual_seed(123)
    torch.rand(5)
    assert torch.equal(_autoaugment_batches(d, seed=7, epoch=0)[1][0], first[1][0])
    assert len({batch_seed(7, 0, b) for b in range(100)} | {epoch_seed(7, 0)}) == 101


def test_autoaugment_draws_per_image_and_leaves_the_global_rng_alone():
    """One call of torchvision's transform applies one sub-policy to everything it is given; ours
    gives every image its own draw: 64 copies of one image come out in many versions."""
    img = _tiny_dataset(1).train_x[:1].expand(64, -1, -1, -1).contiguous()
    torch.manual_seed(0)
    expected_next = torch.rand(3)
    torch.manual_seed(0)
    out = autoaugment_uint8(img, seed=11)
    assert torch.equal(torch.rand(3), expected_next)  # the caller's random stream is untouched
    assert out.dtype == torch.uint8 and out.shape == img.shape
    assert len({bytes(o.numpy()) for o in out}) > 10
    assert torch.equal(out, autoaugment_uint8(img, seed=11))
    with pytest.raises(ValueError, match="uint8"):
        autoaugment_uint8(img.float(), seed=0)


def test_eval_loader_refuses_augmentation():
    d = _tiny_dataset(10)
    with pytest.raises(ValueError, match="never augmented"):
        DeviceLoader(d, "cpu", 4, train=False, augment="crop_flip")
    with pytest.raises(ValueError, match="augment"):
        DeviceLoader(d, "cpu", 4, train=True, augment="cutout")


@pytest.mark.parametrize("name, classes", [("synthetic", 100), ("synthetic10", 10)])
def test_synthetic_sets_have_their_catalog_classes_and_say_they_are_synthetic(name, classes):
    d = load_dataset(name, "unused", train_subset=500, test_subset=200)
    assert d.synthetic and d.name == name and d.num_classes == classes
    assert int(d.train_y.max()) == classes - 1 and int(d.test_y.max()) == classes - 1
    assert f"{classes} classes" in d.source and "SYNTHETIC" in d.source
