"""Top-5 classes of images with an exported model alone (tools/predict.py is the same program).

    ijckd-predict shipped/ijckd photo.jpg more/ [--batch 64]

ARTIFACT is the directory ijckd-export wrote (model.jax and model.json) or its model.jax.
IMAGES are files or folders (searched below for .jpg, .jpeg, .png, .bmp, .gif, .webp).
Each image is read as RGB; a model of at most 64 pixels takes it resized whole to its input
size (as an image-folder run read its data), a larger model resized to 8/7 of its input
size on the shorter side and centre-cropped, the evaluation's very pixels (torchvision's
Resize + CenterCrop on PIL, ijckd_jax/data/stream.py). One line per image: the top-5
classes, by name where the run had them (an image folder's class folders), with softmax
probabilities.
"""
import argparse
import json
import os
import sys

import numpy as np
from PIL import Image

from ijckd_jax.data.folders import to_rgb
from ijckd_jax.data.stream import resize_and_center_crop
from ijckd_jax.frozen_model import ARTIFACT, DESCRIPTION

EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.webp')
LARGEST_WHOLE_IMAGE = 64  # pixels: up to this input size an image is resized whole


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('artifact', metavar='ARTIFACT', help='the export directory, or its model.jax')
    parser.add_argument('images', nargs='+', metavar='IMAGES', help='image files or folders')
    parser.add_argument('--batch', type=int, default=64, help='images per call')
    return parser.parse_args(argv)


def image_paths(arguments):
    """The image files named or found below the folders named, in order."""
    paths = []
    for argument in arguments:
        if os.path.isdir(argument):
            paths += sorted(os.path.join(root, name) for root, _, names in os.walk(argument)
                            for name in names if name.lower().endswith(EXTENSIONS))
        elif os.path.isfile(argument):
            paths.append(argument)
        else:
            raise FileNotFoundError(f'{argument} is neither an image file nor a folder.')
    if not paths:
        raise FileNotFoundError(f'No images ({", ".join(EXTENSIONS)}) in {", ".join(arguments)}.')
    return paths


def prepare(path, size):
    """The image at `path` as the model's uint8 [size, size, 3] input; None if unreadable."""
    try:
        with Image.open(path) as image:
            return fit(to_rgb(image), size)
    except OSError:
        return None


def fit(image, size):
    """An RGB PIL image as uint8 [size, size, 3]."""
    if size <= LARGEST_WHOLE_IMAGE:
        return np.asarray(image.resize((size, size), Image.BILINEAR))
    return resize_and_center_crop(image, size, round(size * 8 / 7))


def load_artifact(path):
    """(the deserialized jax.export artifact, model.json's content)."""
    import jax

    directory = path if os.path.isdir(path) else os.path.dirname(path)
    model_path, description_path = os.path.join(directory, ARTIFACT), os.path.join(directory, DESCRIPTION)
    if not (os.path.isfile(model_path) and os.path.isfile(description_path)):
        raise FileNotFoundError(f'{path} is not an export: it needs {ARTIFACT} and {DESCRIPTION} (written by '
                                'tools/export_student.py).')
    with open(model_path, 'rb') as file:
        exported = jax.export.deserialize(bytearray(file.read()))
    with open(description_path) as file:
        return exported, json.load(file)


def top5(logits, names):
    """'name 0.83, name 0.10, ...' of one image's logits."""
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    best = np.argsort(-probabilities, kind='stable')[:5]
    return ', '.join(f'{names[index] if names else index} {probabilities[index]:.3f}' for index in best)


def main(argv=None):
    arguments = parse_arguments(argv)
    try:
        exported, description = load_artifact(arguments.artifact)
        paths = image_paths(arguments.images)
    except (OSError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    size, names = description['input']['shape'][1], description['class_names']
    images = {path: prepare(path, size) for path in paths}
    for path in [path for path, image in images.items() if image is None]:
        print(f'{path}: unreadable, skipped', file=sys.stderr)
    readable = [path for path, image in images.items() if image is not None]
    for start in range(0, len(readable), arguments.batch):
        batch = readable[start:start + arguments.batch]
        logits = np.asarray(exported.call(np.stack([images[path] for path in batch])))
        for path, row in zip(batch, logits):
            print(f'{path}: {top5(row, names)}')
    return 0 if readable else 1
