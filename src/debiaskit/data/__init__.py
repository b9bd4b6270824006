"""Biased datasets: the in-memory dataset contract and the dataset registry.

>>> from debiaskit.data import get_splits, list_datasets
>>> splits = get_splits("colored_mnist", ratio=0.01)      # doctest: +SKIP
>>> splits["train"].targets, splits["train"].bias          # doctest: +SKIP

A dataset is a :class:`BiasedDataset` (uint8 images, targets, bias labels, per-group counts); a dataset build is
a :class:`DatasetSplits` mapping split names (``train``, ``val``, ``test``, ...) to datasets. Register your own
builder with :func:`register_dataset` (docs/architecture.md, "Add a dataset").
"""

from debiaskit.data.base import BiasedDataset, DatasetSplits, fingerprint_arrays
from debiaskit.data.registry import DATASETS, dataset_options, get_dataset, get_splits, list_datasets, register_dataset

__all__ = [
    "DATASETS",
    "BiasedDataset",
    "DatasetSplits",
    "dataset_options",
    "fingerprint_arrays",
    "get_dataset",
    "get_splits",
    "list_datasets",
    "register_dataset",
]
