"""ImageNet-sized splits streamed through PIL, the paper's pipeline: torchvision's
RandomResizedCrop(224) and a flip for training, Resize(256) + CenterCrop(224) for evaluation,
which on PIL images are the PIL calls of torch_models/transforms.py. The pixels are PIL's own,
so they are torchvision's (tests/test_stream.py compares them with the transcription).

The engine is chosen by measurement (bench/input.py, docs/imagenet.md): tf.data's decoder
can decode a JPEG inside a window only, but PIL's antialiased resize is faster than any
antialiased resize of TensorFlow's on the CPU, and tf.image.resize without antialiasing
point-samples every crop larger than its output. PIL releases the GIL while it decodes and
resizes, so a pool of threads, one per core, decodes in parallel.

Examples are numbered in the order of the epoch and each one's crop and flip come from its
number, so a resumed run skips the examples before its step without reading them and sees
the batches an uninterrupted run would. An image folder streams the files that
`folder_files` found readable; an image that fails to decode all the same is skipped with a
warning, and the stream repeats, so that an epoch is never short. tfds data sets
(imagenet2012) are read with tf.data as encoded bytes and decoded here.
"""
import collections
import io
import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from absl import logging

from ijckd_jax.data import tfds_source
from ijckd_jax.data.folders import folder_part, is_image_folder, readable, to_rgb
from ijckd_jax.errors import ConfigError, DataUnavailable

SCALE = (0.08, 1.0)  # RandomResizedCrop's defaults: the window's share of the image's area,
RATIO = (3 / 4, 4 / 3)  # its aspect ratio (width / height), drawn log-uniformly,
ATTEMPTS = 10  # and the draws before it falls back to a central crop
CHUNK = 16  # images a decoding thread takes at a time


def crop_window(width, height, generator):
    """RandomResizedCrop.get_params with a numpy generator: (top, left, height, width) of the
    window, its area share uniform in SCALE and its aspect ratio log-uniform in RATIO, the
    first of ATTEMPTS draws that fits in the image, else the central crop of the image's
    closest allowed aspect ratio."""
    area = height * width
    for _ in range(ATTEMPTS):
        target_area = area * generator.uniform(*SCALE)
        aspect_ratio = math.exp(generator.uniform(math.log(RATIO[0]), math.log(RATIO[1])))
        crop_width = int(round(math.sqrt(target_area * aspect_ratio)))
        crop_height = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < crop_width <= width and 0 < crop_height <= height:
            top = int(generator.integers(0, height - crop_height + 1))
            left = int(generator.integers(0, width - crop_width + 1))
            return top, left, crop_height, crop_width
    ratio = width / height
    if ratio < RATIO[0]:
        crop_width, crop_height = width, int(round(width / RATIO[0]))
    elif ratio > RATIO[1]:
        crop_width, crop_height = int(round(height * RATIO[1])), height
    else:
        crop_width, crop_height = width, height
    return (height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width


def open_rgb(source):
    """A file path or encoded bytes as a decoded 8-bit RGB PIL image."""
    from PIL import Image

    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
        return to_rgb(image)


def example_generator(seed, epoch, process_index, position):
    """The random numbers of one training example: its crop window, then its flip."""
    return np.random.default_rng([seed, epoch, process_index, position])


def train_image(source, generator, size):
    """RandomResizedCrop(size) + RandomHorizontalFlip on PIL, as uint8 [size, size, 3]."""
    from PIL import Image

    image = open_rgb(source)
    top, left, height, width = crop_window(*image.size, generator)
    image = image.crop((left, top, left + width, top + height)).resize((size, size), Image.BILINEAR)
    pixels = np.asarray(image)
    return pixels[:, ::-1] if generator.random() < 0.5 else pixels


def eval_image(source, size, resize_to):
    """The evaluation's crop of an image file (a path or its bytes)."""
    return resize_and_center_crop(open_rgb(source), size, resize_to)


def resize_and_center_crop(image, size, resize_to):
    """Resize(resize_to) (the shorter side; the longer scaled and truncated) + CenterCrop(size)
    of an RGB PIL image, as uint8 [size, size, 3]."""
    from PIL import Image

    width, height = image.size
    shorter, longer = min(width, height), max(width, height)
    longer = int(resize_to * longer / shorter)
    resized = (resize_to, longer) if width <= height else (longer, resize_to)
    image = image.resize(resized, Image.BILINEAR)
    top, left = int(round((resized[1] - size) / 2.0)), int(round((resized[0] - size) / 2.0))
    return np.asarray(image.crop((left, top, left + size, top + size)))


def decoded_or_none(function, source, *arguments):
    """function(source, ...), or None with a warning if the image cannot be decoded."""
    try:
        return function(source, *arguments)
    except (OSError, ValueError, SyntaxError) as error:
        name = source if isinstance(source, str) else 'an encoded image'
        logging.warning('Skipped %s: it does not decode (%s).', name, error)
        return None


def parallel_map(function, items, threads):
    """function(item) for every item, in order, computed in `threads` threads, each taking
    CHUNK items at a time (one task per image cost a fifth of the rate on one core), with one
    chunk more in flight than threads: more in flight was slower (bench/input.py on one core:
    16 images 250/s, 64 215/s, 128 177/s), as their decoded images leave the caches."""
    def chunked(chunk):
        return [function(item) for item in chunk]

    chunks = iter(lambda: list(itertools.islice(items, CHUNK)), [])
    with ThreadPoolExecutor(threads) as pool:
        pending = collections.deque()
        for chunk in chunks:
            pending.append(pool.submit(chunked, chunk))
            if len(pending) > threads:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


def thread_count():
    """One decoding thread per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1


def folder_files(data, split, process_index, process_count):
    """This process's readable (paths, labels) of an image folder's split; the unreadable ones
    are counted and reported once."""
    paths, labels, _ = folder_part(data.dataset, split, data.num_classes, process_index, process_count)
    paths, labels, unreadable = readable(paths, labels)
    if unreadable:
        logging.warning('Skipped %d unreadable images of %s/%s, e.g. %s.', len(unreadable), data.dataset,
                        split, unreadable[0])
    if not paths:
        raise DataUnavailable(f'No readable image in {data.dataset}/{split} for process {process_index}.')
    return paths, labels


def folder_order(files, seed, epoch, process_index):
    """(source, label) of a folder's split in the epoch's order, repeated, each pass a new
    permutation drawn from (seed, epoch, process, pass)."""
    paths, labels = files
    for repetition in itertools.count():
        order = np.random.default_rng([seed, epoch, process_index, repetition]).permutation(len(paths))
        for index in order:
            yield paths[index], labels[index]


def tfds_order(data, split, process_index, process_count, shuffle_seed=None, shuffle_buffer=0, skip=0):
    """(encoded bytes, label) of a tfds split, read with tf.data undecoded; shuffled (its shards'
    order, then a buffer) and repeated if seeded; the first `skip` records are read, not
    decoded."""
    import tensorflow_datasets as tfds

    encoded = {'decoders': {'image': tfds.decode.SkipDecoding()}}
    if shuffle_seed is not None:
        encoded.update(shuffle_files=True, read_config=tfds.ReadConfig(shuffle_seed=shuffle_seed))
    dataset = tfds_source.tfds_split(data, split, process_index, process_count, **encoded)
    if shuffle_seed is not None:
        dataset = dataset.shuffle(shuffle_buffer, seed=shuffle_seed).repeat()
    return ((bytes(image), int(label)) for image, label in tfds.as_numpy(dataset.skip(skip).prefetch(64)))


def stream_train_batches(data, local_batch_size, steps, seed, epoch, process_index, process_count,
                         start_step=0, files=None):
    """Training batches (images, labels) for steps start_step..steps-1 of `epoch`; example n
    of the epoch is cropped and flipped by example_generator(seed, epoch, process_index, n)."""
    skipped = start_step * local_batch_size
    if is_image_folder(data.dataset):
        files = files or folder_files(data, data.train_split, process_index, process_count)
        examples = itertools.islice(folder_order(files, seed, epoch, process_index), skipped, None)
    else:
        shuffle_seed = seed * 100_003 + epoch
        examples = tfds_order(data, data.train_split, process_index, process_count, shuffle_seed,
                              16 * local_batch_size, skipped)

    def augment(numbered):
        position, (source, label) = numbered
        generator = example_generator(seed, epoch, process_index, position)
        return decoded_or_none(train_image, source, generator, data.image_size), label

    images = parallel_map(augment, enumerate(examples, skipped), thread_count())
    decoded = ((image, label) for image, label in images if image is not None)
    try:
        for _ in range(steps - start_step):
            batch = list(itertools.islice(decoded, local_batch_size))
            yield np.stack([image for image, _ in batch]), np.asarray([label for _, label in batch], np.int32)
    finally:
        images.close()  # the decoding threads stop now, not when the generator is collected


def stream_eval_batches(data, local_batch_size, batches, process_index, process_count, files=None):
    """Evaluation batches (images, labels, mask) at Resize(size·8/7) + CenterCrop(size), padded
    with mask 0 to `batches` batches."""
    resize_to = round(data.image_size * 8 / 7)  # 256 for 224
    if is_image_folder(data.dataset):
        paths, labels = files or folder_files(data, data.eval_split, process_index, process_count)
        examples = zip(paths, labels)
    else:
        examples = tfds_order(data, data.eval_split, process_index, process_count)

    def crop(example):
        source, label = example
        return decoded_or_none(eval_image, source, data.image_size, resize_to), label

    images = parallel_map(crop, examples, thread_count())
    decoded = ((image, label, True) for image, label in images if image is not None)
    padding = itertools.repeat((np.zeros([data.image_size] * 2 + [3], np.uint8), 0, False))
    examples = itertools.chain(decoded, padding)
    try:
        for _ in range(batches):
            batch = list(itertools.islice(examples, local_batch_size))
            yield (np.stack([image for image, _, _ in batch]),
                   np.asarray([label for _, label, _ in batch], np.int32), np.asarray([mask for _, _, mask in batch]))
    finally:
        images.close()


def check_prepared_copy(data):
    """Refuses a prepared copy (ijckd-prepare) whose images are smaller than the run needs even
    for a square image: the evaluation's Resize where the copy shrank the evaluation split,
    else the training crop."""
    from ijckd_jax.data.prepare import prepared_manifest

    manifest = prepared_manifest(data.dataset) if is_image_folder(data.dataset) else None
    if manifest is None:
        return
    shrunk_evaluation = data.eval_split in manifest['shrunk_splits']
    needed = round(data.image_size * 8 / 7) if shrunk_evaluation else data.image_size
    if manifest['max_side'] < needed:
        use = (f'the {needed} that config.data.image_size={data.image_size} resizes to' if shrunk_evaluation
               else f'config.data.image_size={data.image_size}')
        raise ConfigError(f"{data.dataset} is a prepared copy with images of at most {manifest['max_side']} "
                          f'pixels, smaller than {use}; prepare one with --max-side {needed} or more, or train '
                          'on its source.')
