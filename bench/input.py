"""Times the ImageNet-style input stream on this CPU: 224-pixel training crops
(RandomResizedCrop + flip) and evaluation crops (Resize 256 + CenterCrop 224), in images/s,
from an image folder of 500×375 JPEGs (ImageNet's typical size), through the run's Pipeline.

    python bench/input.py                  # every core
    taskset -c 0 python bench/input.py     # one core: the rate per core

The JPEGs are written once to a temporary folder: smooth colour gradients plus noise, at
quality 90, so that they decode like photos rather than like flat colour.
"""
import argparse
import os
import tempfile
import time

import numpy as np

from configs.common import IMAGENET, base_config
from ijckd_jax.data.pipeline import Pipeline

CLASSES = 10


def write_jpegs(root, count, height=375, width=500):
    """`count` training and count // 4 test JPEGs in root/{train,test}/<class>/."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rows, columns = np.mgrid[0:height, 0:width]
    for split, number in (('train', count), ('test', count // 4)):
        for index in range(number):
            directory = os.path.join(root, split, f'class{index % CLASSES}')
            os.makedirs(directory, exist_ok=True)
            phase = rng.uniform(0, 2 * np.pi, 3)
            base = np.stack([127 + 100 * np.sin(rows / 40 + phase[0]), 127 + 100 * np.sin(columns / 55 + phase[1]),
                             127 + 100 * np.sin((rows + columns) / 70 + phase[2])], -1)
            image = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(image).save(os.path.join(directory, f'{index:05d}.jpg'), quality=90)


def images_per_second(batches, batch_size):
    """The rate of `batches` after its first batch (the pipeline's start-up: listing, the
    shuffle buffer)."""
    next(batches)
    start, count = time.perf_counter(), 0
    for _ in batches:
        count += batch_size
    return count / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, default=2048, help='training images to write and stream')
    parser.add_argument('--batch', type=int, default=64)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        write_jpegs(root, arguments.images)
        config = base_config(dict(IMAGENET, dataset=root, num_classes=CLASSES, eval_split='test'))
        config.global_batch_size = config.eval_batch_size = arguments.batch
        pipeline = Pipeline(config)
        cores = len(os.sched_getaffinity(0))
        images_per_second(iter(pipeline.train_epoch(0)), arguments.batch)  # the files into the page cache
        train = images_per_second(iter(pipeline.train_epoch(1)), arguments.batch)
        evaluation = images_per_second((images for images, _, _ in pipeline.evaluation()), arguments.batch)
        print(f'{cores} core(s): training crops {train:,.0f} img/s ({train / cores:,.0f} per core), '
              f'evaluation crops {evaluation:,.0f} img/s ({evaluation / cores:,.0f} per core)')


if __name__ == '__main__':
    main()
