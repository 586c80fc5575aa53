"""ImageNet-sized splits streamed with tf.data, augmented as the field trains ImageNet:
RandomResizedCrop(224) and a flip, evaluated at Resize(256) + CenterCrop(224).

Images travel encoded until a parallel map decodes them: for training, a JPEG is decoded only
inside its random crop's window (tf.image.decode_and_crop_jpeg), which is most of the saving
since RandomResizedCrop keeps 8-100% of the image. An image folder streams the files that
`folder_files` found readable, listed once per run; an image that fails to decode is skipped
with a logged warning.
"""
from absl import logging

from ijckd_jax.data import tfds_source
from ijckd_jax.data.folders import folder_part, is_image_folder, readable
from ijckd_jax.errors import DataUnavailable


def folder_files(data, split, process_index, process_count):
    """This process's readable (paths, labels) of an image folder's split; the unreadable
    ones are counted and reported once."""
    paths, labels, _ = folder_part(data.dataset, split, data.num_classes, process_index, process_count)
    paths, labels, unreadable = readable(paths, labels)
    if unreadable:
        logging.warning('Skipped %d unreadable images of %s/%s, e.g. %s.', len(unreadable), data.dataset,
                        split, unreadable[0])
    if not paths:
        raise DataUnavailable(f'No readable image in {data.dataset}/{split} for process {process_index}.')
    return paths, labels


def encoded_split(data, split, process_index, process_count, shuffle_seed=None, files=None):
    """This process's part of a split as a tf.data.Dataset of (encoded image, label), shuffled
    if seeded; an image folder's `files` are its (paths, labels) from folder_files."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    if not is_image_folder(data.dataset):
        encoded = {'decoders': {'image': tfds.decode.SkipDecoding()}}
        if shuffle_seed is not None:
            encoded.update(shuffle_files=True, read_config=tfds.ReadConfig(shuffle_seed=shuffle_seed))
        return tfds_source.tfds_split(data, split, process_index, process_count, **encoded)
    paths, labels = files
    files = tf.data.Dataset.from_tensor_slices((paths, labels))
    if shuffle_seed is not None:
        files = files.shuffle(len(paths), seed=shuffle_seed)
    return files.map(lambda path, label: (tf.io.read_file(path), label))


def decode(encoded):
    """Any image file as uint8 RGB [height, width, 3]."""
    import tensorflow as tf

    return tf.io.decode_image(encoded, channels=3, expand_animations=False)


def to_uint8(image):
    import tensorflow as tf

    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def random_resized_crop(encoded, seed, size):
    """torchvision's RandomResizedCrop(size): scale (0.08, 1), aspect ratio (3/4, 4/3),
    bilinear; a JPEG is decoded only inside the crop's window."""
    import tensorflow as tf

    def window(shape):
        begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
            shape, tf.zeros([1, 0, 4]), seed=seed, area_range=(0.08, 1.0),
            aspect_ratio_range=(3 / 4, 4 / 3), max_attempts=10, use_image_if_no_bounding_boxes=True)
        return begin, crop_size

    def from_jpeg():
        # libjpeg upsamples colour from neighbouring pixels, which a window lacks at its edges:
        # decode one pixel more on every side the image has one, then cut it off, so that the
        # pixels are exactly those of a full decode.
        shape = tf.image.extract_jpeg_shape(encoded)
        begin, crop_size = window(shape)
        start = tf.maximum(begin[:2] - 1, 0)
        stop = tf.minimum(begin[:2] + crop_size[:2] + 1, shape[:2])
        wide = tf.image.decode_and_crop_jpeg(encoded, tf.concat([start, stop - start], 0), channels=3)
        return tf.slice(wide, tf.concat([begin[:2] - start, [0]], 0), crop_size)

    def from_other_formats():
        image = decode(encoded)
        begin, crop_size = window(tf.shape(image))
        return tf.slice(image, begin, crop_size)

    crop = tf.cond(tf.io.is_jpeg(encoded), from_jpeg, from_other_formats)
    return to_uint8(tf.image.resize(crop, (size, size), 'bilinear'))


def resize_and_center_crop(image, size, resize_to):
    """torchvision's Resize(resize_to) (shorter side) then CenterCrop(size)."""
    import tensorflow as tf

    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scaled = tf.cast(tf.round(shape * resize_to / tf.reduce_min(shape)), tf.int32)
    image = tf.image.resize(image, scaled, 'bilinear')
    return to_uint8(tf.image.resize_with_crop_or_pad(image, size, size))


def stream_train_batches(data, local_batch_size, steps, seed, epoch, process_index, process_count,
                         start_step=0, files=None):
    """ImageNet-style training batches streamed with tf.data, deterministic in (seed, epoch).

    Each example's crop and flip come from a stateless seed (seed, epoch, position), so a
    resumed run skips to `start_step` and sees the batches an uninterrupted run would. The
    stream repeats, so that an image that fails to decode never makes an epoch short.
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    epoch_seed = seed * 100_003 + epoch
    dataset = encoded_split(data, data.train_split, process_index, process_count, epoch_seed, files)
    dataset = dataset.shuffle(16 * local_batch_size, seed=epoch_seed).repeat()

    def augment(position, example):
        encoded, label = example
        example_seed = tf.stack([tf.constant(epoch_seed, tf.int64), position])
        image = random_resized_crop(encoded, example_seed, data.image_size)
        flip = tf.random.stateless_uniform([], seed=example_seed + 1) < 0.5
        return tf.cond(flip, lambda: image[:, ::-1], lambda: image), tf.cast(label, tf.int32)

    dataset = dataset.enumerate().map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.ignore_errors(log_warning=True)
    dataset = dataset.batch(local_batch_size, drop_remainder=True).skip(start_step)
    return tfds.as_numpy(dataset.take(steps - start_step).prefetch(2))


def stream_eval_batches(data, local_batch_size, batches, process_index, process_count, files=None):
    """Evaluation batches (images, labels, mask) at Resize(size·8/7) + CenterCrop(size), padded."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    resize_to = round(data.image_size * 8 / 7)  # 256 for 224
    dataset = encoded_split(data, data.eval_split, process_index, process_count, files=files).map(
        lambda encoded, label: (resize_and_center_crop(decode(encoded), data.image_size, resize_to),
                                tf.cast(label, tf.int32), True),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).ignore_errors(log_warning=True)
    padding = tf.data.Dataset.from_tensors(
        (tf.zeros([data.image_size, data.image_size, 3], tf.uint8), 0, False)).repeat()
    dataset = dataset.concatenate(padding).batch(local_batch_size).take(batches)
    return tfds.as_numpy(dataset.prefetch(2))
