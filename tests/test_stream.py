"""The streamed ImageNet input (data/stream.py) against torchvision's transforms on PIL
(torch_models/transforms.py): the same pixels for the same window, windows drawn from the same
distribution, a resume that skips without decoding, and the prepared copy (data/prepare.py)."""
import io
import json
import math
import os
import re

import ml_collections
import numpy as np
import pytest
import torch
from PIL import Image

from configs.common import IMAGENET
from ijckd_jax.cli import prepare as prepare_command
from ijckd_jax.data import prepare, stream
from ijckd_jax.errors import ConfigError
from ijckd_jax.torch_models import transforms

pytestmark = pytest.mark.quick  # every test of this file is in the quick tier


def photo(rng, height, width):
    """A photo-like image: smooth colour gradients plus noise, so that JPEG keeps detail."""
    rows, columns = np.mgrid[0:height, 0:width]
    phase = rng.uniform(0, 2 * np.pi, 3)
    base = np.stack([127 + 100 * np.sin(rows / 40 + phase[0]), 127 + 100 * np.sin(columns / 55 + phase[1]),
                     127 + 100 * np.sin((rows + columns) / 70 + phase[2])], -1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def encoded(pixels, image_format, **options):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, image_format, **options)
    return buffer.getvalue()


# ImageNet's typical landscape and portrait photos, a small odd-sized one, a grey JPEG and
# the other formats a folder may hold.
IMAGES = [((375, 500), 'JPEG', {'quality': 90}), ((500, 333), 'JPEG', {'quality': 90}),
          ((97, 131), 'JPEG', {'quality': 75}), ((300, 400), 'PNG', {}), ((260, 240), 'BMP', {})]


@pytest.mark.parametrize('shape, image_format, options', IMAGES)
def test_crops_are_torchvisions_pixels_for_the_same_window(shape, image_format, options):
    """Every pixel of the training crop (window, resize, flip) and of the evaluation crop equals
    torchvision's on the same file (measured: 0 levels apart on every pixel: both are PIL's
    decode and antialiased bilinear resize)."""
    rng = np.random.default_rng(0)
    data = encoded(photo(rng, *shape), image_format, **options)
    reference_image = Image.open(io.BytesIO(data)).convert('RGB')
    for position in range(6):
        image = stream.train_image(data, stream.example_generator(0, 1, 0, position), 224)
        generator = stream.example_generator(0, 1, 0, position)
        window = stream.crop_window(*reference_image.size, generator)
        expected = np.asarray(transforms.resized_crop(reference_image, *window, 224))
        np.testing.assert_array_equal(image, expected[:, ::-1] if generator.random() < 0.5 else expected)
    expected = transforms.center_crop(transforms.resize(reference_image, 256), 224)
    np.testing.assert_array_equal(stream.eval_image(data, 224, 256), np.asarray(expected))


def test_a_grey_jpeg_becomes_three_equal_channels_as_torchvisions_convert():
    grey = photo(np.random.default_rng(1), 120, 160)[..., 0]
    data = encoded(grey, 'JPEG', quality=90)
    crop = stream.eval_image(data, 64, 73)
    expected = transforms.center_crop(transforms.resize(Image.open(io.BytesIO(data)).convert('RGB'), 73), 64)
    np.testing.assert_array_equal(crop, np.asarray(expected))
    assert (crop[..., 0] == crop[..., 2]).all()


def kolmogorov_smirnov(first, second):
    """The two-sample Kolmogorov-Smirnov statistic, and its critical value at level 0.001
    (c(α) = sqrt(-ln(α / 2) / 2) = 1.95)."""
    values = np.sort(np.concatenate([first, second]))
    gap = np.abs(np.searchsorted(np.sort(first), values, 'right') / len(first)
                 - np.searchsorted(np.sort(second), values, 'right') / len(second)).max()
    return gap, 1.95 * math.sqrt((len(first) + len(second)) / (len(first) * len(second)))


def window_statistics(windows, width, height):
    """Per window: its area share, log aspect ratio, and where it sits in the room it has."""
    top, left, crop_height, crop_width = np.asarray(windows, np.float64).T
    room_y, room_x = np.maximum(height - crop_height, 1), np.maximum(width - crop_width, 1)
    return {'area': crop_height * crop_width / (width * height), 'log aspect': np.log(crop_width / crop_height),
            'top': top / room_y, 'left': left / room_x}


@pytest.mark.parametrize('width, height', [(500, 375), (1000, 100)])
def test_windows_are_drawn_as_torchvisions_random_resized_crop(width, height):
    """4,000 windows of ours against 4,000 of torchvision's get_params (torch's generator): each
    statistic passes a two-sample Kolmogorov-Smirnov test at level 0.001. 1000×100 is wider than
    4:3 allows, so that most draws end in the central-crop fallback (measured: torchvision 77.2%,
    ours 78.0%); the shares agree within 4 binomial standard deviations. (Drawing the aspect
    ratio uniformly instead of log-uniformly fails: 0.069 against a critical 0.044.)"""
    draws = 4000
    ours = [stream.crop_window(width, height, np.random.default_rng([7, index])) for index in range(draws)]
    torch.manual_seed(0)
    theirs = [transforms.random_resized_crop_params(width, height) for _ in range(draws)]
    for name, values in window_statistics(ours, width, height).items():
        gap, critical = kolmogorov_smirnov(values, window_statistics(theirs, width, height)[name])
        assert gap < critical, (name, gap, critical)
    fallback = central_window(width, height)
    ours_central, theirs_central = (np.mean([window == fallback for window in windows]) for windows in (ours, theirs))
    spread = math.sqrt(max(theirs_central * (1 - theirs_central), 1 / draws) * 2 / draws)
    assert abs(ours_central - theirs_central) < 4 * spread, (ours_central, theirs_central)


def central_window(width, height):
    """torchvision's fallback when no draw fits: the central crop of the closest allowed ratio."""
    ratio = width / height
    if ratio < 3 / 4:
        crop_width, crop_height = width, int(round(width / (3 / 4)))
    elif ratio > 4 / 3:
        crop_width, crop_height = int(round(height * 4 / 3)), height
    else:
        crop_width, crop_height = width, height
    return (height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width


def image_folder(root, counts, shape=(48, 64), classes=None):
    """root/<split>/c<k>/<n>.jpg photos; `classes` per split (default: one image per class)."""
    rng = np.random.default_rng(0)
    for split, count in counts.items():
        for index in range(count):
            directory = os.path.join(root, split, f'c{index % (classes or count):02d}')
            os.makedirs(directory, exist_ok=True)
            Image.fromarray(photo(rng, *shape)).save(os.path.join(directory, f'{index}.jpg'), quality=90)
    return root


def folder_config(root, classes, image_size=32, eval_split='val'):
    return ml_collections.ConfigDict({**IMAGENET, 'dataset': str(root), 'num_classes': classes,
                                      'image_size': image_size, 'eval_split': eval_split, 'data_dir': '',
                                      'download': False})


def test_a_resumed_epoch_skips_its_first_batches_unread_and_continues_as_uninterrupted(tmp_path, caplog,
                                                                                       monkeypatch):
    """One image per class, so that a batch's labels name its files: after an uninterrupted
    epoch, the files of its first batch are overwritten with bytes that are no image; a run
    resumed at step 1 never opens them (opening one logs that it does not decode) and yields
    the uninterrupted run's batches 1 and 2 exactly. One image at a time in one thread, so that
    decoding ahead (two images) stays within the 16 files of the epoch's first pass."""
    monkeypatch.setattr(stream, 'CHUNK', 1)
    monkeypatch.setattr(stream, 'thread_count', lambda: 1)
    root = image_folder(str(tmp_path), {'train': 16, 'val': 2})
    data = folder_config(root, 16)
    files = stream.folder_files(data, 'train', 0, 1)
    epoch = list(stream.stream_train_batches(data, 4, 3, seed=3, epoch=2, process_index=0, process_count=1,
                                             files=files))
    assert len(set(np.concatenate([labels for _, labels in epoch]))) == 12
    for label in epoch[0][1]:
        with open(files[0][list(files[1]).index(label)], 'wb') as file:
            file.write(b'not an image')
    resumed = list(stream.stream_train_batches(data, 4, 3, seed=3, epoch=2, process_index=0, process_count=1,
                                               start_step=1, files=files))
    assert len(resumed) == 2 and 'does not decode' not in caplog.text
    for (images, labels), (resumed_images, resumed_labels) in zip(epoch[1:], resumed):
        np.testing.assert_array_equal(resumed_labels, labels)
        np.testing.assert_array_equal(resumed_images, images)
    another_epoch = list(stream.stream_train_batches(data, 4, 3, 3, 3, 0, 1, start_step=1, files=files))
    assert not np.array_equal(another_epoch[0][1], resumed[0][1])


def test_an_image_that_does_not_decode_is_skipped_and_the_batches_stay_full(tmp_path, caplog):
    root = image_folder(str(tmp_path), {'train': 8, 'val': 3}, classes=2)
    broken = os.path.join(root, 'train', 'c00', '0.jpg')
    with open(broken, 'r+b') as file:  # a readable header, then half the image data
        file.truncate(os.path.getsize(broken) // 2)
    data = folder_config(root, 2)
    batches = list(stream.stream_train_batches(data, 4, 3, 0, 0, 0, 1))
    assert [images.shape for images, _ in batches] == [(4, 32, 32, 3)] * 3
    assert f'Skipped {broken}' in caplog.text
    evaluation = list(stream.stream_eval_batches(data, 2, 3, 0, 1))
    assert [images.shape for images, _, _ in evaluation] == [(2, 32, 32, 3)] * 3
    assert np.concatenate([mask for _, _, mask in evaluation]).tolist() == [True] * 3 + [False] * 3


def test_the_prepared_copy_shrinks_to_its_longest_side_and_copies_small_jpegs_as_they_are(tmp_path, capsys):
    source = image_folder(str(tmp_path / 'source'), {'train': 4, 'val': 2}, shape=(300, 400), classes=2)
    small = os.path.join(source, 'train', 'c00', 'small.jpg')
    Image.fromarray(photo(np.random.default_rng(2), 100, 80)).save(small, quality=80)
    Image.fromarray(photo(np.random.default_rng(3), 90, 500)).save(os.path.join(source, 'val', 'c01', 'wide.png'))
    with open(os.path.join(source, 'train', 'c01', 'empty.jpg'), 'wb'):
        pass
    destination = str(tmp_path / 'prepared')
    assert prepare_command.main([source, destination, '--max-side', '200', '--workers', '2']) == 0
    # Its progress in a log (stderr not a terminal): whole lines, no carriage return.
    assert re.fullmatch(r'9 / 9 images, [\d,]+ per s\n', capsys.readouterr().err)  # the empty file counted
    with open(os.path.join(destination, prepare.MANIFEST)) as file:
        manifest = json.load(file)
    assert manifest['max_side'] == 200 and manifest['images'] == 8
    assert manifest['unreadable'] == [os.path.join(source, 'train', 'c01', 'empty.jpg')]
    sizes = {}
    for split in ('train', 'val'):
        for name in sorted(os.listdir(os.path.join(destination, split))):
            for file in os.listdir(os.path.join(destination, split, name)):
                with Image.open(os.path.join(destination, split, name, file)) as image:
                    sizes[f'{split}/{name}/{file}'] = (image.format, image.size)
    assert sizes['train/c00/0.jpg'] == ('JPEG', (200, 150))  # 400×300 → longest side 200
    assert sizes['val/c01/wide.jpg'] == ('JPEG', (200, 36))  # 500×90, a PNG, re-encoded
    assert len(sizes) == 8 and 'train/c01/empty.jpg' not in sizes
    with open(small, 'rb') as original, open(os.path.join(destination, 'train', 'c00', 'small.jpg'), 'rb') as copy:
        assert copy.read() == original.read()
    assert [entry for entry in os.listdir(tmp_path) if entry.startswith('.')] == []


def test_the_prepared_copy_refuses_a_destination_that_exists_and_a_source_without_splits(tmp_path, capsys):
    source = image_folder(str(tmp_path / 'source'), {'train': 2, 'val': 2})
    destination = tmp_path / 'prepared'
    destination.mkdir()
    (destination / 'mine.txt').write_text('kept')
    assert prepare_command.main([source, str(destination), '--max-side', '320']) == 2
    assert capsys.readouterr().err == (f'error: {destination} already exists; nothing was written. Give a new '
                                       'destination, or delete it first.\n')
    assert os.listdir(destination) == ['mine.txt']
    only_train = image_folder(str(tmp_path / 'only_train'), {'train': 2})
    assert prepare_command.main([only_train, str(tmp_path / 'other'), '--max-side', '320']) == 2
    assert 'has no val/ or test/ folder' in capsys.readouterr().err
    assert not (tmp_path / 'other').exists()


def test_an_interrupted_preparation_leaves_nothing_behind(tmp_path, monkeypatch):
    source = image_folder(str(tmp_path / 'source'), {'train': 2, 'val': 2})

    def interrupted(*arguments):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare, 'shrink_all', interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare.prepare_folder(source, str(tmp_path / 'prepared'), 320)
    assert sorted(os.listdir(tmp_path)) == ['source']


def test_a_prepared_copy_too_small_for_the_run_is_refused(tmp_path):
    """Too small for the evaluation's resize where the copy shrank the evaluation split, for the
    training crop where it kept it as it was (--keep-evaluation: copied byte for byte)."""
    source = image_folder(str(tmp_path / 'source'), {'train': 2, 'val': 2})
    prepare.prepare_folder(source, str(tmp_path / 'prepared'), 64, workers=1)
    stream.check_prepared_copy(folder_config(tmp_path / 'prepared', 2, image_size=56))  # resizes to 64
    with pytest.raises(ConfigError, match='is a prepared copy with images of at most 64 pixels, smaller than the '
                                          '73 that config.data.image_size=64 resizes to; prepare one with '
                                          '--max-side 73 or more'):
        stream.check_prepared_copy(folder_config(tmp_path / 'prepared', 2, image_size=64))
    prepare.prepare_folder(source, str(tmp_path / 'kept'), 40, workers=1, keep_evaluation=True)
    original = os.path.join(source, 'val', 'c00', '0.jpg')
    with open(original, 'rb') as file, open(os.path.join(tmp_path, 'kept', 'val', 'c00', '0.jpg'), 'rb') as copy:
        assert copy.read() == file.read()
    stream.check_prepared_copy(folder_config(tmp_path / 'kept', 2, image_size=40))
    with pytest.raises(ConfigError, match='at most 40 pixels, smaller than config.data.image_size=48; prepare one '
                                          'with --max-side 48 or more'):
        stream.check_prepared_copy(folder_config(tmp_path / 'kept', 2, image_size=48))
