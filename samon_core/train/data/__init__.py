"""Datasets as uint8 tensors and a loader that augments whole batches on the device.

    cifar.py        CIFAR-10/100 through torchvision (download or a local folder)
    synthetic.py    the labelled synthetic 100-class set (no download)
    digits.py       scikit-learn's real 8x8 handwritten digits, upsampled to 32x32 (no download)
    datasets.py     ``load_dataset``: a dataset by name, whole or a seeded subset
    loader.py       ``DeviceLoader``: batched crop / flip / normalize on the device, epoch seeds
    autoaugment.py  AutoAugment's CIFAR-10 policy per image of a uint8 batch, seeded
    tensors.py      ``DatasetTensors``: what every source returns
"""

from samon_core.train.data.cifar import DatasetUnavailable
from samon_core.train.data.datasets import load_dataset
from samon_core.train.data.loader import DeviceLoader, first_images
from samon_core.train.data.tensors import DatasetTensors

__all__ = ["DatasetTensors", "DatasetUnavailable", "DeviceLoader", "first_images", "load_dataset"]
