"""Input: this process's part of each split, in an order fixed by the seed and the epoch.

Sources: tfds data sets (cifar100, imagenet2012, ...), scikit-learn's digits ('digits') and
image folders (a directory path); see sources.py for the last two. Each process reads its
own part of a split (tfds.split_for_jax_process, or the same contiguous cut). CIFAR-sized
splits are held in memory as uint8 arrays; ImageNet-sized ones stream through tf.data. Augmentation follows
the field (anchors §2): CIFAR, a random 32×32 crop of the image zero-padded by 4 and a
horizontal flip; ImageNet, RandomResizedCrop(224) and a flip, evaluated at Resize(256) +
CenterCrop(224). Normalisation happens on the device, inside the jitted step; by default an
in-memory training split goes on the devices whole and is augmented there (device_data.py).
"""
import os
from typing import Iterator, NamedTuple

import numpy as np

PADDING = 4


class DataUnavailable(RuntimeError):
    """The data set is not prepared here; the message says how to get it."""


class Split(NamedTuple):
    images: np.ndarray  # uint8 [examples, height, width, 3]
    labels: np.ndarray  # int32 [examples]


def how_to_get(name, data_dir):
    where = data_dir or '~/tensorflow_datasets'
    if name == 'imagenet2012':
        return (f"tfds found no prepared imagenet2012 in {where}. ImageNet cannot be downloaded "
                'automatically: put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (from '
                f'image-net.org) in {where}/downloads/manual, run `tfds build imagenet2012 '
                f'--data_dir {where}`, and pass --config.data.data_dir={where}.')
    return (f"tfds found no prepared {name} in {where}. On a machine with internet run "
            f"`tfds build {name} --data_dir {where}` (or pass --config.data.download=True), copy "
            f'the directory here if needed, and pass --config.data.data_dir={where}.')


def tfds_split(data, split, process_index, process_count, **load_arguments):
    """This process's part of a tfds split as a tf.data.Dataset of (image, label)."""
    import tensorflow_datasets as tfds

    part = tfds.split_for_jax_process(split, process_index=process_index,
                                      process_count=process_count)
    try:
        dataset = tfds.load(data.dataset, split=part, data_dir=data.data_dir or None,
                            download=data.download, **load_arguments)
    except Exception as error:  # tfds raises AssertionError, OSError, network errors, ...
        raise DataUnavailable(how_to_get(data.dataset, data.data_dir)) from error
    return dataset.map(lambda example: (example['image'], example['label']))


def is_image_folder(data):
    return os.path.isdir(data.dataset)


def load_split(data, split, process_index, process_count) -> Split:
    """This process's part of a split in memory: 'digits', an image folder, or a tfds data set."""
    from ijckd_jax import sources

    if data.dataset == 'digits':
        return sources.load_digits(split, data.image_size, process_index, process_count)
    if is_image_folder(data):
        part, classes = sources.load_image_folder(data.dataset, split, data.image_size,
                                                  process_index, process_count)
        check_class_count(data, classes)
        return part
    return load_in_memory(data, split, process_index, process_count)


def check_class_count(data, classes):
    if len(classes) != data.num_classes:
        raise ValueError(f'{data.dataset} has {len(classes)} classes ({", ".join(classes[:5])}'
                         f'{", ..." if len(classes) > 5 else ""}) but config.data.num_classes is '
                         f'{data.num_classes}; pass --config.data.num_classes={len(classes)}.')


def load_in_memory(data, split, process_index, process_count) -> Split:
    """This process's part of a tfds split of equally sized images, as numpy arrays."""
    import tensorflow_datasets as tfds

    dataset = tfds_split(data, split, process_index, process_count).batch(4096)
    parts = list(tfds.as_numpy(dataset))
    if not parts:
        raise DataUnavailable(f'{data.dataset} split {split} has no examples for process '
                              f'{process_index} of {process_count}.')
    images, labels = (np.concatenate(arrays) for arrays in zip(*parts))
    return Split(images.astype(np.uint8), labels.astype(np.int32))


def crop_and_flip(images, offsets, flips):
    """Random crops of the zero-padded images (torchvision's RandomCrop(size, padding=4)) and flips."""
    size = images.shape[1]
    padded = np.pad(images, ((0, 0), (PADDING, PADDING), (PADDING, PADDING), (0, 0)))
    crops = np.stack([image[top:top + size, left:left + size]
                      for image, (top, left) in zip(padded, offsets)])
    return np.where(flips[:, None, None, None], crops[:, :, ::-1], crops)


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


def folder_part(data, split, process_index, process_count):
    """This process's (paths, labels) of an image folder's split."""
    from ijckd_jax import sources

    paths, labels, classes = sources.list_image_folder(data.dataset, split)
    check_class_count(data, classes)
    indices = np.array_split(np.arange(len(paths)), process_count)[process_index]
    return [paths[index] for index in indices], labels[indices]


def stream_example_count(data, split, process_index, process_count):
    """Examples in this process's part of a split, from the files or the data set's metadata."""
    import tensorflow_datasets as tfds

    if is_image_folder(data):
        return len(folder_part(data, split, process_index, process_count)[0])
    part = tfds.split_for_jax_process(split, process_index=process_index, process_count=process_count)
    try:
        builder = tfds.builder(data.dataset, data_dir=data.data_dir or None)
        return builder.info.splits[part].num_examples
    except Exception as error:
        raise DataUnavailable(how_to_get(data.dataset, data.data_dir)) from error


def stream_split(data, split, process_index, process_count, shuffle_seed=None):
    """This process's part of a split as a tf.data.Dataset of (image, label), shuffled if seeded."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    if not is_image_folder(data):
        if shuffle_seed is None:
            return tfds_split(data, split, process_index, process_count)
        return tfds_split(data, split, process_index, process_count, shuffle_files=True,
                          read_config=tfds.ReadConfig(shuffle_seed=shuffle_seed))
    paths, labels = folder_part(data, split, process_index, process_count)
    files = tf.data.Dataset.from_tensor_slices((paths, labels))
    if shuffle_seed is not None:
        files = files.shuffle(len(paths), seed=shuffle_seed)
    decode = lambda path, label: (tf.io.decode_image(tf.io.read_file(path), channels=3,  # noqa: E731
                                                     expand_animations=False), label)
    # An unreadable image is skipped with a logged warning rather than ending the run.
    return files.map(decode).ignore_errors(log_warning=True)


def random_resized_crop(image, seed, size):
    """torchvision's RandomResizedCrop(size): scale (0.08, 1), aspect ratio (3/4, 4/3), bilinear."""
    import tensorflow as tf

    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), tf.zeros([1, 0, 4]), seed=seed, area_range=(0.08, 1.0),
        aspect_ratio_range=(3 / 4, 4 / 3), max_attempts=10, use_image_if_no_bounding_boxes=True)
    image = tf.image.resize(tf.slice(image, begin, crop_size), (size, size), 'bilinear')
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def resize_and_center_crop(image, size, resize_to):
    """torchvision's Resize(resize_to) (shorter side) then CenterCrop(size)."""
    import tensorflow as tf

    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scaled = tf.cast(tf.round(shape * resize_to / tf.reduce_min(shape)), tf.int32)
    image = tf.image.resize(image, scaled, 'bilinear')
    image = tf.image.resize_with_crop_or_pad(image, size, size)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def stream_train_batches(data, local_batch_size, steps, seed, epoch, process_index, process_count,
                         start_step=0):
    """ImageNet-style training batches streamed with tf.data, deterministic in (seed, epoch).

    Each example's crop and flip come from a stateless seed (seed, epoch, position), so a
    resumed run skips to `start_step` and sees the batches an uninterrupted run would.
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    epoch_seed = seed * 100_003 + epoch
    dataset = stream_split(data, data.train_split, process_index, process_count, epoch_seed)
    dataset = dataset.shuffle(16 * local_batch_size, seed=epoch_seed)

    def augment(position, example):
        image, label = example
        example_seed = tf.stack([tf.constant(epoch_seed, tf.int64), position])
        image = random_resized_crop(image, example_seed, data.image_size)
        flip = tf.random.stateless_uniform([], seed=example_seed + 1) < 0.5
        return tf.cond(flip, lambda: image[:, ::-1], lambda: image), tf.cast(label, tf.int32)

    dataset = dataset.enumerate().map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(local_batch_size, drop_remainder=True).skip(start_step)
    return tfds.as_numpy(dataset.take(steps - start_step).prefetch(2))


def stream_eval_batches(data, local_batch_size, batches, process_index, process_count):
    """Evaluation batches (images, labels, mask) at Resize(size·8/7) + CenterCrop(size), padded."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    resize_to = round(data.image_size * 8 / 7)  # 256 for 224
    dataset = stream_split(data, data.eval_split, process_index, process_count).map(
        lambda image, label: (resize_and_center_crop(image, data.image_size, resize_to),
                              tf.cast(label, tf.int32), True))
    padding = tf.data.Dataset.from_tensors(
        (tf.zeros([data.image_size, data.image_size, 3], tf.uint8), 0, False)).repeat()
    dataset = dataset.concatenate(padding).batch(local_batch_size).take(batches)
    return tfds.as_numpy(dataset)


def agree(value, reduce):
    """The same number on every process: `reduce` (np.min, np.max) over every process's value."""
    from jax.experimental import multihost_utils

    return int(reduce(multihost_utils.process_allgather(np.asarray(value))))


class Pipeline:
    """This process's batches for one run: `train_epoch(epoch, start_step)` and `evaluation()`.

    Every process runs the same number of steps (a jit over all devices needs it):
    `steps_per_epoch` full global batches, and evaluation padded to the longest part.
    """

    def __init__(self, config, process_index, process_count):
        data, self.seed = config.data, config.seed
        self.process_index, self.process_count = process_index, process_count
        self.local_batch = config.global_batch_size // process_count
        self.local_eval_batch = config.eval_batch_size // process_count
        self.data = data
        # Small images live in memory with CIFAR's augmentation; large ones stream with ImageNet's.
        self.in_memory = data.image_size <= 64 if is_image_folder(data) else data.in_memory
        if self.in_memory:
            self.train_split = load_split(data, data.train_split, process_index, process_count)
            self.eval_split = load_split(data, data.eval_split, process_index, process_count)
            train_count, eval_count = len(self.train_split.labels), len(self.eval_split.labels)
        else:
            train_count, eval_count = (stream_example_count(data, split, process_index, process_count)
                                       for split in (data.train_split, data.eval_split))
        self.steps_per_epoch = agree(train_count // self.local_batch, np.min)
        if config.steps_per_epoch > 0:
            self.steps_per_epoch = min(self.steps_per_epoch, config.steps_per_epoch)
        if self.steps_per_epoch == 0:
            raise ValueError(f'{data.dataset} has fewer training examples per process ({train_count}) '
                             f'than the per-process batch ({self.local_batch}); lower '
                             'config.global_batch_size.')
        self.eval_batches = agree(-(-eval_count // self.local_eval_batch), np.max)

    def train_epoch(self, epoch, start_step=0):
        if self.in_memory:
            return train_batches(self.train_split, self.local_batch, self.steps_per_epoch, self.seed,
                                 epoch, self.process_index, start_step)
        return stream_train_batches(self.data, self.local_batch, self.steps_per_epoch, self.seed, epoch,
                                    self.process_index, self.process_count, start_step)

    def evaluation(self):
        if self.in_memory:
            return eval_batches(self.eval_split, self.local_eval_batch, self.eval_batches)
        return stream_eval_batches(self.data, self.local_eval_batch, self.eval_batches,
                                   self.process_index, self.process_count)
