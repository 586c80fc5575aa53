"""Image folders: root/<split>/<class>/<image>, classes indexed in sorted order.

Small images are read into memory here; large ones are streamed by stream.py from the paths
that `folder_part` lists.
"""
import os

import numpy as np
from absl import logging

from ijckd_jax.data.split import DataUnavailable, Split, process_indices

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.webp', '.tif', '.tiff')


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


def check_class_count(root, classes, num_classes):
    """Refuses a folder whose class count is not the config's, naming the value to pass."""
    if len(classes) != num_classes:
        raise ValueError(f'{root} has {len(classes)} classes ({", ".join(classes[:5])}'
                         f'{", ..." if len(classes) > 5 else ""}) but config.data.num_classes is '
                         f'{num_classes}; pass --config.data.num_classes={len(classes)}.')


def folder_part(root, split, num_classes, process_index=0, process_count=1):
    """This process's (paths, labels) of root/split, and every class name."""
    paths, labels, classes = list_image_folder(root, split)
    check_class_count(root, classes, num_classes)
    indices = process_indices(len(paths), process_index, process_count)
    return [paths[index] for index in indices], labels[indices], classes


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


def load_image_folder(root, split, image_size, num_classes, process_index=0, process_count=1):
    """This process's part of root/split/<class>/<image> in memory, and the class names.

    Unreadable images are skipped, counted and logged.
    """
    paths, labels, classes = folder_part(root, split, num_classes, process_index, process_count)
    images, kept, unreadable = [], [], []
    for path, label in zip(paths, labels):
        image = read_image(path, image_size)
        if image is None:
            unreadable.append(path)
        else:
            images.append(image)
            kept.append(label)
    if unreadable:
        logging.warning('Skipped %d unreadable images of %s/%s, e.g. %s.', len(unreadable), root,
                        split, unreadable[0])
    if not images:
        raise DataUnavailable(f'No readable image in {root}/{split} for process {process_index}.')
    return Split(np.stack(images), np.asarray(kept, np.int32)), classes


def is_image_folder(dataset):
    """Whether config.data.dataset names an image folder rather than a tfds data set."""
    return os.path.isdir(dataset)
