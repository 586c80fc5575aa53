"""A prepared copy of an image folder: every image at most `max_side` pixels on its longer side,
written once as JPEG, so that a streamed run decodes a few times fewer pixels per image (as
FFCV's max_resolution does for ImageNet). Images already that small and already JPEG are copied
byte for byte; the others are shrunk with PIL's antialiased bicubic filter and saved at
`quality`.

What it changes: RandomResizedCrop's small windows come from fewer source pixels, and on a
4:3 photo a longer side of 320 leaves a shorter side of 240, which Resize(256) then enlarges.
The paper's protocol is the unprepared set; the copy trades that for input speed.

With keep_evaluation the evaluation splits are copied as they are: the evaluation is then the
paper's protocol, while training reads the smaller images.

The copy is written to a temporary folder beside the destination and renamed to it only when
complete, so an interrupted run leaves nothing at the destination; prepared.json in it records
the source, max_side and the counts.
"""
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

from ijckd_jax.data.folders import IMAGE_EXTENSIONS, class_names, to_rgb
from ijckd_jax.errors import RunError

MANIFEST = 'prepared.json'
TRAIN_SPLIT = 'train'
EVAL_SPLITS = ('val', 'validation', 'test')


class PrepareError(RunError, ValueError):
    """A source or destination the prepared copy cannot be made from or to."""


def splits_of(source):
    """The split folders of `source` to copy: train/ and every evaluation split it has."""
    if not os.path.isdir(source):
        raise PrepareError(f'{source} is not a folder; the source is an image folder with '
                           f'{TRAIN_SPLIT}/<class>/<image> and val/<class>/<image> (or test/).')
    present = [split for split in (TRAIN_SPLIT, *EVAL_SPLITS) if os.path.isdir(os.path.join(source, split))]
    if TRAIN_SPLIT not in present or len(present) < 2:
        raise PrepareError(f'{source} has no {"train/" if TRAIN_SPLIT not in present else "val/ or test/"} '
                           f'folder; the source is an image folder with {TRAIN_SPLIT}/<class>/<image> and '
                           'val/<class>/<image> (or test/).')
    return present


def jobs(source, destination, splits, shrunk_splits):
    """(source path, destination path, shrink or copy as it is) of every image; a shrunk image
    is named <stem>.jpg, and two images that would get one name are refused before anything
    is written."""
    pairs, taken = [], {}
    for split in splits:
        for name in class_names(source, split):
            folder = os.path.join(source, split, name)
            for file in sorted(os.listdir(folder)):
                if not file.lower().endswith(IMAGE_EXTENSIONS):
                    continue
                shrunk = split in shrunk_splits
                target = os.path.join(split, name, os.path.splitext(file)[0] + '.jpg' if shrunk else file)
                if target in taken:
                    raise PrepareError(f'{os.path.join(folder, file)} and {taken[target]} would both be written '
                                       f'as {target}; rename one of them.')
                taken[target] = os.path.join(folder, file)
                pairs.append((os.path.join(folder, file), os.path.join(destination, target), shrunk))
    return pairs


def shrink(job, max_side, quality):
    """Writes one image of the copy; returns False if PIL cannot read it (it is skipped)."""
    from PIL import Image

    source, target, shrunk = job
    if not shrunk:
        shutil.copyfile(source, target)
        return True
    try:
        with Image.open(source) as image:
            width, height = image.size
            if image.format == 'JPEG' and image.mode in ('RGB', 'L') and max(width, height) <= max_side:
                shutil.copyfile(source, target)
                return True
            image = to_rgb(image)
            scale = max_side / max(width, height)
            if scale < 1:
                size = (max(1, round(width * scale)), max(1, round(height * scale)))
                image = image.resize(size, Image.BICUBIC)
            image.save(target, 'JPEG', quality=quality)
            return True
    except (OSError, ValueError, SyntaxError):
        if os.path.exists(target):  # a save that failed half way
            os.remove(target)
        return False


def shrink_all(pairs, max_side, quality, workers):
    """Writes every pair in `workers` processes with a progress line (rewritten in place on a
    terminal, a line per update in a log); the unreadable sources."""
    unreadable, start = [], time.perf_counter()
    terminal = sys.stderr.isatty()
    # Spawned, not forked: a fork of a process running JAX's threads can deadlock.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context('spawn')) as pool:
        results = pool.map(shrink, pairs, [max_side] * len(pairs), [quality] * len(pairs), chunksize=64)
        for count, ((source, _, _), written) in enumerate(zip(pairs, results), 1):
            if not written:
                unreadable.append(source)
            if count % 2000 == 0 or count == len(pairs):
                elapsed = time.perf_counter() - start
                print(f'{count:,} / {len(pairs):,} images, {count / elapsed:,.0f} per s',
                      end='\r' if terminal else '\n', file=sys.stderr, flush=True)
    if terminal:
        print(file=sys.stderr)
    return unreadable


def prepare_folder(source, destination, max_side, quality=95, workers=None, keep_evaluation=False):
    """Writes the prepared copy of image folder `source` at `destination`; returns its manifest.
    keep_evaluation copies the evaluation splits as they are, so that evaluation follows the
    paper's protocol while training reads the smaller images."""
    if max_side < 1:
        raise PrepareError(f'--max-side is {max_side}; it is the longest side in pixels of every image of the '
                           'copy, e.g. 320 for 224-pixel crops.')
    if os.path.exists(destination):
        raise PrepareError(f'{destination} already exists; nothing was written. Give a new destination, or '
                           'delete it first.')
    splits = splits_of(source)
    parent = os.path.dirname(os.path.abspath(destination))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=f'.{os.path.basename(destination)}.partial-')
    try:
        shrunk_splits = [TRAIN_SPLIT] if keep_evaluation else splits
        pairs = jobs(source, staging, splits, shrunk_splits)
        for directory in sorted({os.path.dirname(target) for _, target, _ in pairs}):
            os.makedirs(directory, exist_ok=True)
        unreadable = shrink_all(pairs, max_side, quality, workers or os.cpu_count())
        manifest = {'source': os.path.abspath(source), 'max_side': max_side, 'quality': quality,
                    'shrunk_splits': shrunk_splits, 'images': len(pairs) - len(unreadable), 'unreadable': unreadable}
        with open(os.path.join(staging, MANIFEST), 'w') as file:
            json.dump(manifest, file, indent=1)
        os.rename(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def prepared_manifest(folder):
    """The prepared.json of a prepared copy, or None if `folder` is not one."""
    try:
        with open(os.path.join(folder, MANIFEST)) as file:
            return json.load(file)
    except FileNotFoundError:
        return None
