"""Times the ImageNet-style input stream on this CPU: 224-pixel training crops
(RandomResizedCrop + flip) and evaluation crops (Resize 256 + CenterCrop 224), in images/s,
from an image folder of 500×375 JPEGs (ImageNet's typical size), through the run's Pipeline,
next to the bare decode + crop + resize of the same files, and from a prepared copy of them.

    python bench/input.py                  # every core
    taskset -c 0 python bench/input.py     # one core: the rate per core

"Bare" runs the pipeline's own per-image functions (stream.py) over the files' bytes already
in memory, in one thread per core, without ordering, batching or reading; the last line is
the pipeline's rate over it: `pipeline / bare: training X.XX, evaluation Y.YY`. The prepared
copy is `ijckd-prepare SRC DST --max-side 320` of the same files.

The JPEGs are written once to a temporary folder: smooth colour gradients plus noise, at
quality 90, so that they decode like photos rather than like flat colour.
"""
import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from configs.common import IMAGENET, base_config
from ijckd_jax.data import stream
from ijckd_jax.data.folders import list_image_folder
from ijckd_jax.data.pipeline import Pipeline
from ijckd_jax.data.prepare import prepare_folder

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


def pipeline_rates(root, batch):
    """(training, evaluation) images/s of the run's Pipeline on image folder `root`."""
    config = base_config(dict(IMAGENET, dataset=root, num_classes=CLASSES, eval_split='test'))
    config.global_batch_size = config.eval_batch_size = batch
    pipeline = Pipeline(config)
    images_per_second(iter(pipeline.train_epoch(0)), batch)  # the files into the page cache
    train = images_per_second(iter(pipeline.train_epoch(1)), batch)
    evaluation = images_per_second((images for images, _, _ in pipeline.evaluation()), batch)
    return train, evaluation


def bare_rate(root, split, per_image, threads):
    """Images/s of `per_image(encoded, index)` over the split's files, their bytes held in
    memory, in `threads` threads: the decode + crop + resize alone."""
    paths = list_image_folder(root, split)[0]
    encoded = [open(path, 'rb').read() for path in paths]
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(per_image, encoded, range(len(encoded)), chunksize=16))
    return len(encoded) / (time.perf_counter() - start)


def bare_rates(root, threads, size=224):
    """(training, evaluation) images/s of stream.py's per-image crops, without the pipeline."""
    def training(encoded, index):
        return stream.train_image(encoded, stream.example_generator(0, 0, 0, index), size)

    def evaluation(encoded, index):
        return stream.eval_image(encoded, size, round(size * 8 / 7))

    return bare_rate(root, 'train', training, threads), bare_rate(root, 'test', evaluation, threads)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, default=2048, help='training images to write and stream')
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--max-side', type=int, default=320, help='the prepared copy\'s longest side')
    arguments = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as root:
        photos, prepared = os.path.join(root, 'photos'), os.path.join(root, 'prepared')
        write_jpegs(photos, arguments.images)
        prepare_folder(photos, prepared, arguments.max_side, workers=cores)
        train, evaluation = pipeline_rates(photos, arguments.batch)
        bare_train, bare_evaluation = bare_rates(photos, cores)
        prepared_train, prepared_evaluation = pipeline_rates(prepared, arguments.batch)
    print(f'{cores} core(s): training crops {train:,.0f} img/s ({train / cores:,.0f} per core), '
          f'evaluation crops {evaluation:,.0f} img/s ({evaluation / cores:,.0f} per core)')
    print(f'bare decode + crop + resize: training {bare_train:,.0f} img/s ({bare_train / cores:,.0f} per core), '
          f'evaluation {bare_evaluation:,.0f} img/s ({bare_evaluation / cores:,.0f} per core)')
    print(f'prepared copy (--max-side {arguments.max_side}): training crops {prepared_train:,.0f} img/s '
          f'({prepared_train / cores:,.0f} per core), evaluation crops {prepared_evaluation:,.0f} img/s '
          f'({prepared_evaluation / cores:,.0f} per core)')
    print(f'pipeline / bare: training {train / bare_train:.2f}, evaluation {evaluation / bare_evaluation:.2f}')


if __name__ == '__main__':
    main()
