"""Offline sources: scikit-learn's digits, and image folders the tests write themselves."""
import logging
import os

import numpy as np
import pytest
from PIL import Image

from configs import demo
from configs.common import base_config
from ijckd_jax.data.digits import load_digits
from ijckd_jax.data.folders import load_image_folder
from ijckd_jax.data.pipeline import Pipeline
from ijckd_jax.errors import DataUnavailable

pytestmark = pytest.mark.quick  # every test of this file is in the quick tier

COLOURS = {'cat': (200, 30, 30), 'dog': (30, 200, 30), 'emu': (30, 30, 200)}


def write_folder(root, per_class=4, size=8, extras=True):
    """train/ and test/ with one plain colour per class; a text file and a broken JPEG besides."""
    for split in ('train', 'test'):
        for name, colour in COLOURS.items():
            os.makedirs(root / split / name)
            for index in range(per_class):
                image = Image.new('RGB', (size, size), tuple(c + index for c in colour))
                image.save(root / split / name / f'{index}.{"png" if index % 2 else "jpg"}')
    if extras:
        (root / 'train' / 'cat' / 'notes.txt').write_text('not an image')
        (root / 'train' / 'dog' / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 truncated')
    return root


def test_digits_split_is_fixed_disjoint_and_matches_the_demo_statistics():
    train, test = load_digits('train', 16), load_digits('test', 16)
    assert train.images.shape == (1437, 16, 16, 3) and test.images.shape == (360, 16, 16, 3)
    assert set(np.unique(train.labels)) == set(range(10))
    from sklearn.datasets import load_digits as sklearn_digits
    # Together the two splits are exactly sklearn's digits, each upscaled by repetition.
    expected = sorted(image.tobytes() for image in np.round(sklearn_digits().images * (255 / 16)).astype(np.uint8))
    found = sorted(image[::2, ::2, 0].tobytes() for split in (train, test) for image in split.images)
    assert found == expected
    assert all((image[::2] == image[1::2]).all() and (image[:, ::2] == image[:, 1::2]).all()
               for image in train.images[:50])  # each digit pixel became a 2×2 block
    np.testing.assert_array_equal(load_digits('train', 16).labels, train.labels)
    pixels = train.images / 255.0
    np.testing.assert_allclose(demo.DIGITS['mean'], [pixels.mean()] * 3, atol=1e-4)
    np.testing.assert_allclose(demo.DIGITS['std'], [pixels.std()] * 3, atol=1e-4)


def test_image_folder_reads_sorted_classes_and_skips_what_is_not_an_image(tmp_path, caplog):
    root = write_folder(tmp_path)
    with caplog.at_level(logging.WARNING):
        split, classes = load_image_folder(str(root), 'train', 8, 3)
    assert classes == ['cat', 'dog', 'emu']
    assert split.images.shape == (12, 8, 8, 3) and split.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert 'Skipped 1 files' in caplog.text and 'notes.txt' in caplog.text
    assert 'Skipped 1 unreadable images' in caplog.text and 'broken.jpg' in caplog.text
    np.testing.assert_array_equal(split.images[5, 0, 0], (31, 201, 31))  # dog, image 1 (a PNG)
    resized, _ = load_image_folder(str(root), 'test', 16, 3)
    assert resized.images.shape == (12, 16, 16, 3)
    parts = [load_image_folder(str(root), 'train', 8, 3, index, 2)[0] for index in range(2)]
    np.testing.assert_array_equal(np.concatenate([part.labels for part in parts]), split.labels)


def test_empty_class_folder_and_missing_split_are_clear_errors(tmp_path):
    root = write_folder(tmp_path, extras=False)
    os.makedirs(root / 'train' / 'fox')
    with pytest.raises(DataUnavailable, match='Class folder .*train/fox holds no images'):
        load_image_folder(str(root), 'train', 8, 4)
    with pytest.raises(DataUnavailable, match='has no validation/ directory; the layout is'):
        load_image_folder(str(root), 'validation', 8, 3)


def folder_config(root, **data):
    config = base_config()
    config.data.update({**dict(dataset=str(root), num_classes=3, image_size=8), **data})
    config.update(dict(global_batch_size=4, eval_batch_size=4))
    return config


def test_class_count_must_match_the_config(tmp_path):
    config = folder_config(write_folder(tmp_path, extras=False), num_classes=100)
    with pytest.raises(ValueError, match='has 3 classes \\(cat, dog, emu\\) but config.data.num_classes is 100'):
        Pipeline(config, 0, 1)


def test_large_folder_images_stream_with_imagenet_augmentation(tmp_path):
    config = folder_config(write_folder(tmp_path, size=80), image_size=72)
    pipeline = Pipeline(config, 0, 1)
    assert not pipeline.in_memory and pipeline.steps_per_epoch == 3
    epoch = list(pipeline.train_epoch(0))
    again = list(pipeline.train_epoch(0))
    assert [images.shape for images, _ in epoch] == [(4, 72, 72, 3)] * 3  # 12 readable of 13
    for (a, _), (b, _) in zip(epoch, again):
        np.testing.assert_array_equal(a, b)
    evaluation = list(pipeline.evaluation())
    assert sum(mask.sum() for _, _, mask in evaluation) == 12
