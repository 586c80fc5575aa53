"""Input: augmentation, deterministic order, evaluation padding, missing data, and the cache of
decoded image folders."""
import os
import subprocess

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs.common import CIFAR100, IMAGENET
from ijckd_jax import files
from ijckd_jax.data import folders, stream, tfds_source
from ijckd_jax.data.augment import crop_and_flip
from ijckd_jax.data.pipeline import eval_batches, train_batches
from ijckd_jax.data.split import Split
from ijckd_jax.errors import DataUnavailable

pytestmark = pytest.mark.quick  # every test of this file is in the quick tier


def data_config(settings=CIFAR100, **fields):
    return ml_collections.ConfigDict({**settings, 'data_dir': '', 'download': False, **fields})


def test_crop_and_flip_match_a_direct_padded_crop():
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    offsets = np.array([[0, 0], [8, 8], [3, 5]])
    flips = np.array([False, True, True])
    result = crop_and_flip(images, offsets, flips)
    for image, (top, left), flip, output in zip(images, offsets, flips, result):
        canvas = np.zeros((40, 40, 3), np.uint8)
        canvas[4:36, 4:36] = image
        expected = canvas[top:top + 32, left:left + 32]
        np.testing.assert_array_equal(output, expected[:, ::-1] if flip else expected)
    assert result[0, :4, :4].max() == 0  # offset (0, 0) keeps 4 rows and columns of padding


def test_training_order_is_a_seeded_permutation_and_resumes_exactly():
    images = np.arange(20, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    split = Split(images, np.arange(20, dtype=np.int32))
    epoch = list(train_batches(split, 4, 5, seed=1, epoch=0, process_index=0))
    labels = np.concatenate([labels for _, labels in epoch])
    assert sorted(labels) == list(range(20)) and list(labels) != list(range(20))
    again = list(train_batches(split, 4, 5, seed=1, epoch=0, process_index=0))
    resumed = list(train_batches(split, 4, 5, seed=1, epoch=0, process_index=0, start_step=3))
    for (a_images, a_labels), (b_images, b_labels) in zip(epoch[3:], resumed):
        np.testing.assert_array_equal(a_images, b_images)
        np.testing.assert_array_equal(a_labels, b_labels)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(epoch, again))
    next_epoch = np.concatenate([labels for _, labels in train_batches(split, 4, 5, 1, 1, 0)])
    assert list(next_epoch) != list(labels)


def test_augmentation_distribution():
    """Offsets uniform over the 9×9 crop positions, flips with probability 1/2."""
    split = Split(np.zeros((4000, 2, 2, 3), np.uint8), np.zeros(4000, np.int32))
    generator = np.random.default_rng([0, 0, 0])
    generator.permutation(4000)
    offsets = generator.integers(0, 9, size=(4000, 2))
    flips = generator.random(4000) < 0.5
    assert set(np.unique(offsets)) == set(range(9))
    assert abs(flips.mean() - 0.5) < 0.03
    assert abs(offsets.mean() - 4) < 0.15
    assert len(list(train_batches(split, 1000, 4, 0, 0, 0))) == 4


def test_evaluation_pads_to_the_agreed_batch_count_with_a_zero_mask():
    split = Split(np.ones((5, 2, 2, 3), np.uint8), np.arange(5, dtype=np.int32))
    batches = list(eval_batches(split, local_batch_size=4, batches=3))
    masks = np.concatenate([mask for _, _, mask in batches])
    assert masks.tolist() == [True] * 5 + [False] * 7
    np.testing.assert_array_equal(np.concatenate([labels for _, labels, _ in batches])[:5], np.arange(5))


def test_processes_read_disjoint_parts_of_a_prepared_split(tmp_path):
    """On a real prepared tfds data set (tfds's generated dummy_mnist; mock_data ignores slicing)."""
    tfds.testing.DummyMnist(data_dir=str(tmp_path)).download_and_prepare()
    config = data_config(dataset='dummy_mnist', data_dir=str(tmp_path))
    parts = [tfds_source.load_in_memory(config, 'train', index, 2) for index in range(2)]
    whole = tfds_source.load_in_memory(config, 'train', 0, 1)
    assert [len(part.labels) for part in parts] == [len(whole.labels) // 2] * 2
    np.testing.assert_array_equal(np.concatenate([part.images for part in parts]), whole.images)
    np.testing.assert_array_equal(np.concatenate([part.labels for part in parts]), whole.labels)
    assert whole.images.dtype == np.uint8 and whole.labels.dtype == np.int32


@pytest.mark.parametrize('settings, name', [(CIFAR100, 'cifar100'), (IMAGENET, 'imagenet2012')])
def test_missing_data_set_says_how_to_get_it(tmp_path, settings, name):
    config = data_config(settings, data_dir=str(tmp_path))
    with pytest.raises(DataUnavailable, match=f'tfds found no prepared {name} in {tmp_path}') as error:
        tfds_source.load_in_memory(config, 'train', 0, 1)
    expected = 'downloads/manual' if name == 'imagenet2012' else f'tfds build {name}'
    assert expected in str(error.value)


def test_imagenet_stream_crops_flips_and_resumes_deterministically():
    config = data_config(IMAGENET, image_size=64)
    with tfds.testing.mock_data(num_examples=12):
        epoch = list(stream.stream_train_batches(config, 4, 3, seed=0, epoch=0, process_index=0,
                                                     process_count=1))
        resumed = list(stream.stream_train_batches(config, 4, 3, seed=0, epoch=0, process_index=0,
                                                       process_count=1, start_step=1))
        evaluation = list(stream.stream_eval_batches(config, 5, 3, 0, 1))
    assert len(epoch) == 3 and epoch[0][0].shape == (4, 64, 64, 3) and epoch[0][0].dtype == np.uint8
    for (a_images, a_labels), (b_images, b_labels) in zip(epoch[1:], resumed):
        np.testing.assert_array_equal(a_images, b_images)
        np.testing.assert_array_equal(a_labels, b_labels)
    assert [images.shape for images, _, _ in evaluation] == [(5, 64, 64, 3)] * 3
    assert np.concatenate([mask for _, _, mask in evaluation]).sum() == 12


def write_two_classes(root):
    """train/cat and train/dog, two 8×8 PNGs each."""
    from PIL import Image

    for index, name in enumerate(('cat', 'dog')):
        os.makedirs(root / 'train' / name)
        for number in range(2):
            Image.new('RGB', (8, 8), (100 * index, 50 * number, 0)).save(root / 'train' / name / f'{number}.png')
    return root


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """The folder cache in tmp_path/cache, and the paths that load_image_folder decodes."""
    monkeypatch.setenv(folders.CACHE_VARIABLE, str(tmp_path / 'cache'))
    decoded, read_image = [], folders.read_image
    monkeypatch.setattr(folders, 'read_image', lambda path, size: decoded.append(path) or read_image(path, size))
    return tmp_path / 'cache', decoded


def test_a_decoded_folder_is_cached_and_decoded_again_once_it_changes(tmp_path, cache):
    from PIL import Image

    directory, decoded = cache
    root = write_two_classes(tmp_path / 'data')
    written = sorted(root.rglob('*'))
    first, classes = folders.load_image_folder(str(root), 'train', 8, 2)
    again, _ = folders.load_image_folder(str(root), 'train', 8, 2)
    assert len(decoded) == 4 and classes == ['cat', 'dog']  # the second read decoded nothing
    np.testing.assert_array_equal(again.images, first.images)
    np.testing.assert_array_equal(again.labels, [0, 0, 1, 1])
    assert os.listdir(directory) == [os.path.basename(folders.cache_path(str(root), 'train', 8, 0, 1))]
    assert sorted(root.rglob('*')) == written  # nothing in the data folder
    # A file changed, then a file added: decoded again, the same cache file replaced.
    Image.new('RGB', (12, 12), (255, 255, 255)).save(root / 'train' / 'dog' / '1.png')
    changed, _ = folders.load_image_folder(str(root), 'train', 8, 2)
    assert len(decoded) == 8 and (changed.images[3] == 255).all() and (changed.images[:3] == first.images[:3]).all()
    Image.new('RGB', (8, 8), (0, 0, 255)).save(root / 'train' / 'cat' / '2.png')
    added, _ = folders.load_image_folder(str(root), 'train', 8, 2)
    assert len(decoded) == 13 and added.labels.tolist() == [0, 0, 0, 1, 1] and len(os.listdir(directory)) == 1
    # Another image size is another cache file.
    folders.load_image_folder(str(root), 'train', 4, 2)
    assert len(decoded) == 18 and len(os.listdir(directory)) == 2


def test_an_interrupted_cache_write_leaves_no_cache_file(tmp_path, cache, monkeypatch):
    directory, decoded = cache
    root = write_two_classes(tmp_path / 'data')
    path = folders.cache_path(str(root), 'train', 8, 0, 1)

    def interrupted(file, **arrays):
        file.write(b'PK\x03\x04 half an archive')
        raise KeyboardInterrupt
    with monkeypatch.context() as patch:
        patch.setattr(np, 'savez', interrupted)
        with pytest.raises(KeyboardInterrupt):
            folders.load_image_folder(str(root), 'train', 8, 2)
    assert os.listdir(directory) == []
    # A killed writer's temporary file is never read, and the next write removes it.
    ended = subprocess.Popen(['true'])
    ended.wait()
    with open(f'{path}.{files.HOST}-{ended.pid}.tmp', 'wb') as file:
        file.write(b'PK\x03\x04 half an archive')
    folders.load_image_folder(str(root), 'train', 8, 2)
    folders.load_image_folder(str(root), 'train', 8, 2)
    assert len(decoded) == 8 and os.listdir(directory) == [os.path.basename(path)]
