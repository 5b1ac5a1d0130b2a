"""fedwave.data: datasets as normalised tensors with their metadata, and partitioners over users.

The first step of a round's path: ``load_dataset`` gives train/test tensors; ``partition`` splits the
training indices among UEs as a pure function of the labels, the number of users and a seed.
"""

from fedwave.data.datasets import Dataset, dataset_names, load_dataset
from fedwave.data.partition import (
    format_histogram,
    label_histogram,
    partition,
    partitioner_names,
    partitioner_params,
)
from fedwave.data.synthetic import SyntheticSpec

__all__ = [
    "Dataset",
    "SyntheticSpec",
    "dataset_names",
    "format_histogram",
    "label_histogram",
    "load_dataset",
    "partition",
    "partitioner_names",
    "partitioner_params",
]
