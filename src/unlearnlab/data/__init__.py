"""Datasets, forget tasks and device-resident batching."""

from unlearnlab.data import formats as _formats  # noqa: F401  (registers the standard datasets)
from unlearnlab.data.datasets import ImageDataset, list_datasets, load_dataset, register_dataset
from unlearnlab.data.forget import ForgetSpec, ForgetTask, make_task
from unlearnlab.data.tensors import StreamData, TensorData

__all__ = [
    "ForgetSpec",
    "ForgetTask",
    "ImageDataset",
    "StreamData",
    "TensorData",
    "list_datasets",
    "load_dataset",
    "make_task",
    "register_dataset",
]
