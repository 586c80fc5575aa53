"""The host pipeline of one run: this process's batches, deterministic in the seed and epoch.

CIFAR-sized splits (cifar100, the digits, image folders of at most 64 pixels) are held in
memory and get CIFAR's crop and flip (augment.py); ImageNet-sized ones are streamed and
decoded by PIL with torchvision's crops (stream.py). Every process runs the same number of
steps, as a jit over all devices needs: `steps_per_epoch` full global batches, and evaluation
padded to the longest part.
"""
from typing import Iterator

import numpy as np
from absl import logging

from ijckd_jax.data import stream, tfds_source
from ijckd_jax.data.augment import PADDING, crop_and_flip
from ijckd_jax.data.digits import load_digits
from ijckd_jax.data.folders import is_image_folder, load_image_folder
from ijckd_jax.data.split import Split, agree
from ijckd_jax.errors import ConfigError

LARGEST_IN_MEMORY_FOLDER_IMAGE = 64  # pixels; larger folder images stream with ImageNet's augmentation


def in_memory(data):
    """Whether the run holds its splits in memory (else they are streamed)."""
    if is_image_folder(data.dataset):
        return data.image_size <= LARGEST_IN_MEMORY_FOLDER_IMAGE
    return data.in_memory


def reads_with_tf_data(data):
    """Whether the run needs TensorFlow: tfds data sets are read with tf.data; the digits and
    image folders are not."""
    return data.dataset != 'digits' and not is_image_folder(data.dataset)


def load_split(data, split, process_index, process_count) -> Split:
    """This process's part of a split in memory: 'digits', an image folder, or a tfds data set."""
    if data.dataset == 'digits':
        return load_digits(split, data.image_size, process_index, process_count)
    if is_image_folder(data.dataset):
        return load_image_folder(data.dataset, split, data.image_size, data.num_classes,
                                 process_index, process_count)[0]
    return tfds_source.load_in_memory(data, split, process_index, process_count)


def train_batches(split: Split, local_batch_size, steps, seed, epoch, process_index,
                  start_step=0) -> Iterator[tuple]:
    """(images, labels) of this process for steps start_step..steps-1 of `epoch`.

    Every random choice of the epoch is drawn up front from (seed, epoch, process), so a run
    resumed at any step sees exactly the batches an uninterrupted run would.
    """
    generator = np.random.default_rng([seed, epoch, process_index])
    count = len(split.labels)
    order = generator.permutation(count)
    offsets = generator.integers(0, 2 * PADDING + 1, size=(count, 2))
    flips = generator.random(count) < 0.5
    for step in range(start_step, steps):
        positions = slice(step * local_batch_size, (step + 1) * local_batch_size)
        indices = order[positions]
        yield (crop_and_flip(split.images[indices], offsets[positions], flips[positions]),
               split.labels[indices])


def eval_batches(split: Split, local_batch_size, batches):
    """(images, labels, mask) covering this process's part once in `batches` batches; padding
    has mask 0, so that every process runs the same number of steps."""
    count = len(split.labels)
    for batch in range(batches):
        indices = np.arange(batch * local_batch_size, (batch + 1) * local_batch_size)
        mask = indices < count
        chosen = np.where(mask, indices, 0)
        yield split.images[chosen], split.labels[chosen], mask


def padded_eval_batch(eval_batch_size, device_count):
    """The evaluation batch rounded up to a multiple of the devices: every device gets an equal
    share, and the added examples are padding with mask 0 (500 on 8 devices → 504)."""
    return -(-eval_batch_size // device_count) * device_count


class Pipeline:
    """This process's batches for one run: `train_epoch(epoch, start_step)` and `evaluation()`."""

    def __init__(self, config, process_index=0, process_count=1, device_count=1):
        data, self.seed = config.data, config.seed
        self.process_index, self.process_count = process_index, process_count
        self.local_batch = config.global_batch_size // process_count
        eval_batch = padded_eval_batch(config.eval_batch_size, device_count)
        if eval_batch != config.eval_batch_size:
            logging.info('Evaluation batch %d, padded to %d for %d devices.', config.eval_batch_size,
                         eval_batch, device_count)
        self.local_eval_batch = eval_batch // process_count
        self.data = data
        self.in_memory = in_memory(data)
        self.files = {}  # a streamed image folder's readable (paths, labels) by split
        if self.in_memory:
            self.train_split = load_split(data, data.train_split, process_index, process_count)
            self.eval_split = load_split(data, data.eval_split, process_index, process_count)
            train_count, eval_count = len(self.train_split.labels), len(self.eval_split.labels)
        elif is_image_folder(data.dataset):
            stream.check_prepared_copy(data)
            self.files = {split: stream.folder_files(data, split, process_index, process_count)
                          for split in (data.train_split, data.eval_split)}
            train_count, eval_count = (len(self.files[split][0]) for split in (data.train_split, data.eval_split))
        else:
            train_count, eval_count = (tfds_source.example_count(data, split, process_index, process_count)
                                       for split in (data.train_split, data.eval_split))
        self.steps_per_epoch = agree(train_count // self.local_batch, np.min)
        if config.steps_per_epoch > 0:
            self.steps_per_epoch = min(self.steps_per_epoch, config.steps_per_epoch)
        if self.steps_per_epoch == 0:
            raise ConfigError(f'{data.dataset} has fewer training examples per process ({train_count}) '
                              f'than the per-process batch ({self.local_batch}); lower '
                              'config.global_batch_size.')
        self.eval_batches = agree(-(-eval_count // self.local_eval_batch), np.max)

    def train_epoch(self, epoch, start_step=0):
        if self.in_memory:
            return train_batches(self.train_split, self.local_batch, self.steps_per_epoch, self.seed,
                                 epoch, self.process_index, start_step)
        return stream.stream_train_batches(self.data, self.local_batch, self.steps_per_epoch,
                                           self.seed, epoch, self.process_index, self.process_count,
                                           start_step, self.files.get(self.data.train_split))

    def evaluation(self):
        if self.in_memory:
            return eval_batches(self.eval_split, self.local_eval_batch, self.eval_batches)
        return stream.stream_eval_batches(self.data, self.local_eval_batch, self.eval_batches,
                                          self.process_index, self.process_count,
                                          self.files.get(self.data.eval_split))
