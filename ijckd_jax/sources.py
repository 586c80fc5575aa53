"""In-memory sources besides tfds: scikit-learn's digits and image folders.

Both give this process's part of a split as a `Split` of uint8 RGB images: the sorted
examples cut into `process_count` contiguous parts, as tfds.split_for_jax_process does.
"""
import os

import numpy as np
from absl import logging

from ijckd_jax.data import DataUnavailable, Split

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.webp', '.tif', '.tiff')
DIGITS_TEST_EXAMPLES = 360  # of 1,797: a fixed 20% test split


def process_part(split: Split, process_index, process_count) -> Split:
    indices = np.array_split(np.arange(len(split.labels)), process_count)[process_index]
    return Split(split.images[indices], split.labels[indices])


def load_digits(split, image_size, process_index=0, process_count=1) -> Split:
    """scikit-learn's 1,797 handwritten 8×8 digits, upscaled to image_size, as RGB.

    The train/test split is fixed (a permutation seeded with 0), whatever the run's seed.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    if split not in ('train', 'test'):
        raise ValueError(f"The digits data set has splits 'train' and 'test', not '{split}'.")
    if image_size % 8:
        raise ValueError(f'Digits are 8×8; config.data.image_size must be a multiple of 8, got {image_size}.')
    digits = sklearn_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    chosen = order[:DIGITS_TEST_EXAMPLES] if split == 'test' else order[DIGITS_TEST_EXAMPLES:]
    scale = image_size // 8
    images = np.round(digits.images[chosen] * (255 / 16)).astype(np.uint8)  # 0..16 → 0..255
    images = images.repeat(scale, axis=1).repeat(scale, axis=2)  # nearest-neighbour upscaling
    images = np.repeat(images[..., None], 3, axis=-1)
    return process_part(Split(images, digits.target[chosen].astype(np.int32)), process_index, process_count)


def list_image_folder(root, split):
    """(paths, labels, class names) of root/split/<class>/<image>, classes in sorted order.

    Files that are not images by their extension are skipped, counted and logged; a class
    folder with no image is an error.
    """
    directory = os.path.join(root, split)
    if not os.path.isdir(directory):
        raise DataUnavailable(f'Image folder {root} has no {split}/ directory; the layout is '
                              f'{root}/train/<class>/<image> and {root}/test/<class>/<image>.')
    classes = sorted(entry for entry in os.listdir(directory)
                     if os.path.isdir(os.path.join(directory, entry)))
    if not classes:
        raise DataUnavailable(f'{directory} holds no class folders.')
    paths, labels, skipped = [], [], []
    for label, name in enumerate(classes):
        files = sorted(os.listdir(os.path.join(directory, name)))
        images = [file for file in files if file.lower().endswith(IMAGE_EXTENSIONS)]
        skipped += [os.path.join(directory, name, file) for file in files if file not in images]
        if not images:
            raise DataUnavailable(f'Class folder {os.path.join(directory, name)} holds no images '
                                  f'({", ".join(IMAGE_EXTENSIONS)}).')
        paths += [os.path.join(directory, name, file) for file in images]
        labels += [label] * len(images)
    if skipped:
        logging.warning('Skipped %d files of %s that are not images, e.g. %s.', len(skipped),
                        directory, skipped[0])
    return paths, np.asarray(labels, np.int32), classes


def read_image(path, image_size):
    """An RGB uint8 image resized (bilinear) to image_size×image_size, or None if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert('RGB')
            if image.size != (image_size, image_size):
                image = image.resize((image_size, image_size), Image.BILINEAR)
            return np.asarray(image, np.uint8)
    except (OSError, ValueError, SyntaxError):
        return None


def load_image_folder(root, split, image_size, process_index=0, process_count=1):
    """This process's part of root/split/<class>/<image> in memory, and the class names.

    Unreadable images are skipped, counted and logged.
    """
    paths, labels, classes = list_image_folder(root, split)
    indices = np.array_split(np.arange(len(paths)), process_count)[process_index]
    images, kept, unreadable = [], [], []
    for index in indices:
        image = read_image(paths[index], image_size)
        if image is None:
            unreadable.append(paths[index])
        else:
            images.append(image)
            kept.append(labels[index])
    if unreadable:
        logging.warning('Skipped %d unreadable images of %s/%s, e.g. %s.', len(unreadable), root,
                        split, unreadable[0])
    if not images:
        raise DataUnavailable(f'No readable image in {root}/{split} for process {process_index}.')
    return Split(np.stack(images), np.asarray(kept, np.int32)), classes
