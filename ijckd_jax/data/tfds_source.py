"""tfds data sets (cifar100, imagenet2012, ...): this process's part, read with tf.data from
a prepared data directory; nothing is downloaded unless config.data.download asks for it."""
import socket
import urllib.parse
import urllib.request

import numpy as np

from ijckd_jax.data.split import Split
from ijckd_jax.errors import DataUnavailable


# Seconds one connection attempt to a download host may take: tfds itself retries an
# unreachable host for minutes before it gives up.
CONNECT_SECONDS = 5


def how_to_get(name, data_dir, download=False):
    """What to do when `name` is not prepared in `data_dir` (and, with download=True, tfds could
    not download it either)."""
    where = data_dir or '~/tensorflow_datasets'
    if name == 'imagenet2012':
        return (f"tfds found no prepared imagenet2012 in {where}. ImageNet cannot be downloaded "
                'automatically: put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (from '
                f'image-net.org) in {where}/downloads/manual, run `tfds build imagenet2012 '
                f'--data_dir {where}`, and pass --config.data.data_dir={where}.')
    alternative = '' if download else ' (or pass --config.data.download=True)'
    return (f"tfds found no prepared {name} in {where}. On a machine with internet run "
            f"`tfds build {name} --data_dir {where}`{alternative}, copy "
            f'the directory here if needed, and pass --config.data.data_dir={where}.')


def connection_address(url):
    """(host, port) that a download of `url` connects to: its proxy's where one is set."""
    proxy = urllib.request.getproxies().get(urllib.parse.urlsplit(url).scheme)
    if proxy and not urllib.request.proxy_bypass(urllib.parse.urlsplit(url).hostname):
        url = proxy
    parts = urllib.parse.urlsplit(url)
    return parts.hostname, parts.port or (443 if parts.scheme == 'https' else 80)


def check_download(data):
    """With config.data.download=True, the host tfds would download an unprepared data set from
    is reachable: one short connection attempt, before tfds starts, since tfds retries an
    unreachable host for minutes and leaves partial files in the data directory."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(data.dataset, data_dir=data.data_dir or None)
    # A prepared data set has its dataset_info.json (builder.is_prepared() says so too, but logs a
    # warning where it does not); a manual download (ImageNet) fetches nothing, and tfds names
    # its missing files at once.
    prepared = (builder.data_path / 'dataset_info.json').exists()
    if prepared or builder.MANUAL_DOWNLOAD_INSTRUCTIONS or not builder.url_infos:
        return
    url = next(iter(builder.url_infos))
    try:
        socket.create_connection(connection_address(url), timeout=CONNECT_SECONDS).close()
    except OSError as error:
        where = data.data_dir or '~/tensorflow_datasets'
        raise DataUnavailable(f'config.data.download=True, but {urllib.parse.urlsplit(url).hostname}, where tfds '
                              f'downloads {data.dataset} from, cannot be reached from this machine ({error}). On a '
                              f'machine with internet run `tfds build {data.dataset} --data_dir {where}`, copy the '
                              f'directory here, and pass --config.data.data_dir={where}.') from None


def class_count_and_image_size(data):
    """The classes of the tfds data set's label feature and the side of its images, from the
    builder's own definition (no data read, nothing downloaded); None for either where the data
    set has no class label, or images of varying or non-square size."""
    import tensorflow_datasets as tfds

    features = tfds.builder(data.dataset, data_dir=data.data_dir or None).info.features
    label = features['label'] if 'label' in features else None
    shape = getattr(features['image'], 'shape', None) if 'image' in features else None
    size = shape[0] if shape and shape[0] is not None and shape[0] == shape[1] else None
    return getattr(label, 'num_classes', None), size


def process_split_name(split, process_index, process_count):
    """The tfds split name of this process's contiguous part of `split`."""
    import tensorflow_datasets as tfds

    return tfds.split_for_jax_process(split, process_index=process_index, process_count=process_count)


def tfds_split(data, split, process_index, process_count, **load_arguments):
    """This process's part of a tfds split as a tf.data.Dataset of (image, label)."""
    import tensorflow_datasets as tfds

    part = process_split_name(split, process_index, process_count)
    try:
        dataset = tfds.load(data.dataset, split=part, data_dir=data.data_dir or None,
                            download=data.download, **load_arguments)
    except Exception as error:  # tfds raises AssertionError, OSError, network errors, ...
        raise DataUnavailable(how_to_get(data.dataset, data.data_dir, data.download)) from error
    return dataset.map(lambda example: (example['image'], example['label']))


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


def example_count(data, split, process_index, process_count):
    """Examples in this process's part of a tfds split, from the data set's metadata."""
    import tensorflow_datasets as tfds

    part = process_split_name(split, process_index, process_count)
    try:
        builder = tfds.builder(data.dataset, data_dir=data.data_dir or None)
        return builder.info.splits[part].num_examples
    except Exception as error:
        raise DataUnavailable(how_to_get(data.dataset, data.data_dir, data.download)) from error
