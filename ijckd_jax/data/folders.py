"""Image folders: root/<split>/<class>/<image>, classes indexed in sorted order.

Small images are read into memory here; large ones are streamed by stream.py from the paths
that `folder_part` lists.

A folder read into memory is decoded once: the decoded split is kept in a cache directory
(DEFAULT_CACHE, or the directory that the environment variable CACHE_VARIABLE names; set to ''
it turns the cache off), one file per folder, split, image size and process part, never in the
data folder itself. A later run reads it back instead of decoding, unless a file of the split
has been added, removed, resized or modified since (each file's path, size and modification
time are compared), and decodes and replaces it then.
"""
import hashlib
import json
import os
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from absl import logging

from ijckd_jax import files
from ijckd_jax.data.split import Split, process_indices
from ijckd_jax.errors import DataUnavailable

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.webp', '.tif', '.tiff')
CACHE_VARIABLE = 'IJCKD_JAX_FOLDER_CACHE'
DEFAULT_CACHE = '~/.cache/ijckd_jax/folders'  # beside main.py's XLA cache, ~/.cache/ijckd_jax/xla
# Part of every cache entry's key: raise it when decoding changes what it gives (read_image,
# to_rgb), so that entries decoded before are decoded again.
DECODING_VERSION = 1
PROGRESS_SECONDS = 10  # between two progress lines while a folder is decoded


def list_image_folder(root, split):
    """(paths, labels, class names) of root/split/<class>/<image>, classes in sorted order.

    Files that are not images by their extension are skipped, counted and logged; a class
    folder with no image is an error.
    """
    directory = split_directory(root, split)
    classes = class_names(root, split)
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


def split_directory(root, split):
    """root/split, which must exist."""
    directory = os.path.join(root, split)
    if not os.path.isdir(directory):
        raise DataUnavailable(f'Image folder {root} has no {split}/ directory; the layout is '
                              f'{root}/train/<class>/<image> and {root}/test/<class>/<image>.')
    return directory


def class_names(root, split):
    """The class folders of root/split, sorted."""
    directory = split_directory(root, split)
    return sorted(entry for entry in os.listdir(directory) if os.path.isdir(os.path.join(directory, entry)))


def check_same_classes(root, splits):
    """Refuses splits whose class folders differ: labels are indices in sorted order, so the
    same count with other names would shift them silently."""
    train, *others = [(split, class_names(root, split)) for split in splits]
    for split, classes in others:
        if classes != train[1]:
            only_train = sorted(set(train[1]) - set(classes))
            only_other = sorted(set(classes) - set(train[1]))
            raise DataUnavailable(
                f'{root}/{train[0]} and {root}/{split} have different class folders (only in '
                f'{train[0]}/: {", ".join(only_train[:5]) or "none"}; only in {split}/: '
                f'{", ".join(only_other[:5]) or "none"}); labels follow the sorted names, so both '
                'need the same classes.')


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


def to_rgb(image):
    """A PIL image of any mode as 8-bit RGB. PIL's convert('RGB') clips 16- and 32-bit grey
    levels to 255 (a 16-bit PNG would turn white), so those are scaled to 8 bits first;
    palette, grey, CMYK and alpha modes convert as PIL defines them."""
    from PIL import Image

    if image.mode.startswith('I'):  # 'I;16', 'I;16B', 'I' (32-bit): 16-bit PNGs and TIFFs
        levels = np.asarray(image, np.float64)
        image = Image.fromarray(np.round(np.clip(levels, 0, 65535) * (255 / 65535)).astype(np.uint8))
    elif image.mode == 'F':
        image = Image.fromarray(np.round(np.clip(np.asarray(image), 0, 1) * 255).astype(np.uint8))
    return image.convert('RGB')


def read_image(path, image_size):
    """An RGB uint8 image resized (bilinear) to image_size×image_size, or None if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = to_rgb(image)
            if image.size != (image_size, image_size):
                image = image.resize((image_size, image_size), Image.BILINEAR)
            return np.asarray(image, np.uint8)
    except (OSError, ValueError, SyntaxError):
        return None


def readable(paths, labels):
    """The (paths, labels) of the files whose image header PIL can read, and the others: a
    cheap scan (no decoding), in threads, so that a streamed epoch counts what it can read."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    def opens(path):
        try:
            with Image.open(path):
                return True
        except (OSError, ValueError, SyntaxError):
            return False

    with ThreadPoolExecutor(max_workers=min(32, 4 * (os.cpu_count() or 1))) as pool:
        good = list(pool.map(opens, paths))
    kept = [path for path, ok in zip(paths, good) if ok]
    return kept, np.asarray(labels)[np.asarray(good, bool)], [path for path, ok in zip(paths, good) if not ok]


def load_image_folder(root, split, image_size, num_classes, process_index=0, process_count=1):
    """This process's part of root/split/<class>/<image> in memory, and the class names: from
    the cache where it holds this very folder, else decoded (and cached).

    Unreadable images are skipped, counted and logged.
    """
    paths, labels, classes = folder_part(root, split, num_classes, process_index, process_count)
    name = os.path.join(root, split)
    path = cache_path(root, split, image_size, process_index, process_count)
    key = folder_key(paths, labels, image_size)
    cached = read_cache(path, key) if path else None
    if cached is not None:
        loaded, unreadable = cached
        logging.info('Read %d images of %s from the cache %s.', len(loaded.labels), name, path)
    else:
        loaded, unreadable = decode_folder(paths, labels, image_size, name)
    if unreadable:
        logging.warning('Skipped %d unreadable images of %s, e.g. %s.', len(unreadable), name, unreadable[0])
    if loaded is None:
        raise DataUnavailable(f'No readable image in {name} for process {process_index}.')
    if path and cached is None:
        write_cache(path, key, loaded, unreadable)
    return loaded, classes


def decode_folder(paths, labels, image_size, name):
    """(Split of the readable images, or None if there is none; the unreadable paths), decoded
    in threads (PIL decodes and resizes without the GIL), with a progress line every
    PROGRESS_SECONDS."""
    images, kept, unreadable = [], [], []
    start = last = time.time()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        decoded = pool.map(lambda path: read_image(path, image_size), paths, chunksize=64)
        for done, (path, label, image) in enumerate(zip(paths, labels, decoded), 1):
            if image is None:
                unreadable.append(path)
            else:
                images.append(image)
                kept.append(label)
            if time.time() - last >= PROGRESS_SECONDS:
                last = time.time()
                logging.info('Decoding %s: %d of %d images, %.0f s.', name, done, len(paths), last - start)
    logging.info('Decoded %d images of %s in %.1f s.', len(paths), name, time.time() - start)
    return (Split(np.stack(images), np.asarray(kept, np.int32)) if images else None), unreadable


def cache_path(root, split, image_size, process_index, process_count):
    """The cache file of this process's part of root/split at image_size; '' with the cache off."""
    directory = os.environ.get(CACHE_VARIABLE, DEFAULT_CACHE)
    if not directory:
        return ''
    place = json.dumps([os.path.abspath(root), split, image_size, process_index, process_count])
    return os.path.join(os.path.expanduser(directory), hashlib.sha256(place.encode()).hexdigest()[:24] + '.npz')


def folder_key(paths, labels, image_size):
    """What the decoded images depend on, as a digest: each file's path, label, size and
    modification time, the image size and DECODING_VERSION."""
    def stamp(path):
        try:
            status = os.stat(path)
        except OSError:  # gone since it was listed: it reads as unreadable
            return None
        return status.st_size, status.st_mtime_ns
    files_read = [(path, int(label), stamp(path)) for path, label in zip(paths, labels)]
    return hashlib.sha256(json.dumps([DECODING_VERSION, image_size, files_read]).encode()).hexdigest()


def read_cache(path, key):
    """(Split, unreadable paths) that the cache file `path` holds for `key`; None if it holds
    none, another key (the folder changed) or cannot be read."""
    try:
        with np.load(path) as cached:
            if str(cached['key']) != key:
                return None
            return Split(cached['images'], cached['labels']), [str(path) for path in cached['unreadable']]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        logging.warning('The cache file %s cannot be read (%s): decoding the folder again.', path, error)
        return None


def write_cache(path, key, split, unreadable):
    """Writes the cache file through a temporary file renamed into place, so that an interrupted
    write leaves no cache file (a killed process's temporary file is removed by the next write);
    a cache that cannot be written is only a warning."""
    temporary = f'{path}.{files.HOST}-{os.getpid()}.tmp'
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        remove_abandoned(path)
        try:
            with open(temporary, 'wb') as file:
                np.savez(file, key=key, images=split.images, labels=split.labels,
                         unreadable=np.asarray(unreadable, str))
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.remove(temporary)
            raise
    except OSError as error:
        logging.warning('Could not cache the decoded images in %s (%s); the next run decodes them again.',
                        path, error)
        return
    logging.info('Cached the decoded images in %s.', path)


def remove_abandoned(path):
    """Removes the temporary files of `path` that processes of this host, killed while writing
    it, left behind."""
    directory, name = os.path.split(path)
    prefix = f'{name}.{files.HOST}-'
    for entry in os.listdir(directory):
        pid = entry[len(prefix):-len('.tmp')]
        if entry.startswith(prefix) and entry.endswith('.tmp') and pid.isdigit() and not files.process_alive(int(pid)):
            os.remove(os.path.join(directory, entry))


def is_image_folder(dataset):
    """Whether config.data.dataset names an image folder rather than a tfds data set."""
    return os.path.isdir(dataset)
