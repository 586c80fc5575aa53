"""What every source gives: this process's part of a split, as uint8 images and int32 labels."""
from typing import NamedTuple

import numpy as np


class Split(NamedTuple):
    images: np.ndarray  # uint8 [examples, height, width, 3]
    labels: np.ndarray  # int32 [examples]


def process_indices(count, process_index, process_count) -> np.ndarray:
    """The indices of this process's part of `count` ordered examples: contiguous parts of
    sizes differing by at most one, as tfds.split_for_jax_process cuts a tfds split."""
    return np.array_split(np.arange(count), process_count)[process_index]


def agree(value, reduce):
    """The same number on every process: `reduce` (np.min, np.max) over every process's value."""
    from jax.experimental import multihost_utils

    return int(reduce(multihost_utils.process_allgather(np.asarray(value))))
