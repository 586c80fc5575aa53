"""The training split held on the devices: the same crops, order and augmentation
distribution as the host path, on four devices."""
import functools

import jax
import numpy as np
import pytest

from conftest import CPU_DEVICES
from ijckd_jax.data import device as device_data
from ijckd_jax.data.augment import PADDING, crop_and_flip
from ijckd_jax.data.pipeline import train_batches
from ijckd_jax.data.split import Split
from ijckd_jax.training.mesh import Mesh

pytestmark = pytest.mark.quick  # every test of this file is in the quick tier

SIZE = 8  # images of SIZE×SIZE; padded by 4, a crop has 9×9 positions
CELLS = (2 * PADDING + 1) ** 2 * 2  # crop positions × flip


def numbered_images(count):
    """Images whose pixel (row, column) holds 1 + row * SIZE + column, so a crop shows where
    it was cut (0 is padding) and every example carries 1 + its index in the last channel."""
    pixels = 1 + np.arange(SIZE * SIZE).reshape(SIZE, SIZE)
    images = np.zeros((count, SIZE, SIZE, 3), np.uint8)
    images[..., 0] = pixels
    images[..., 2] = 1 + np.arange(count)[:, None, None]
    return images


@functools.cache
def crop_cells():
    """{the first channel of each possible crop of a numbered image: its cell}, where cell
    (top * 9 + left) * 2 + flipped numbers the CELLS."""
    positions = 2 * PADDING + 1
    tops, lefts, flips = np.meshgrid(range(positions), range(positions), (False, True), indexing='ij')
    offsets = np.stack([tops.ravel(), lefts.ravel()], axis=1)
    crops = crop_and_flip(numbered_images(CELLS), offsets, flips.ravel())
    return {crop[..., 0].tobytes(): cell for cell, crop in enumerate(crops)}


def crop_cell(crop):
    return crop_cells()[crop[..., 0].tobytes()]


def chi_square_against_uniform(cells):
    counts = np.bincount(cells, minlength=CELLS)
    expected = len(cells) / CELLS
    return float(np.sum((counts - expected) ** 2 / expected))


@pytest.fixture(scope='module')
def mesh():
    assert len(CPU_DEVICES) == 4
    return Mesh(CPU_DEVICES)


def drawn_batches(split, mesh, steps_per_epoch, global_batch, steps, seed=0):
    """What the on-device train step sees at steps 0..steps-1, as host arrays."""
    draw = jax.jit(functools.partial(device_data.draw_batch, mesh=mesh, steps_per_epoch=steps_per_epoch,
                                     global_batch=global_batch))
    batches, orders = [], {}
    for step in range(steps):
        epoch = step // steps_per_epoch
        if epoch not in orders:
            orders[epoch] = device_data.epoch_order(split, epoch, mesh, seed)
        batches.append(jax.device_get(draw(split, orders[epoch], np.int32(step), np.int32(seed))))
    return batches


def test_crop_and_flip_on_the_device_equal_the_host_path():
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    offsets = np.array([[0, 0], [8, 8], [3, 5], [8, 0], [0, 8], [4, 4]])
    flips = np.array([False, True, True, False, True, False])
    np.testing.assert_array_equal(jax.jit(device_data.crop_and_flip)(images, offsets, flips),
                                  crop_and_flip(images, offsets, flips))


def test_each_device_visits_its_shard_once_per_epoch_and_resumes_exactly(mesh):
    # 37 examples on 4 devices: 9 each, the last one unused; batches of 2 per device.
    split = device_data.place_split(Split(numbered_images(37), np.arange(37, dtype=np.int32)),
                                    mesh)
    assert split.labels.shape == (36,)
    batches = drawn_batches(split, mesh, steps_per_epoch=4, global_batch=8, steps=8)
    for epoch in range(2):
        labels = np.stack([labels for _, labels, _ in batches[4 * epoch:4 * epoch + 4]])  # [step, 8]
        for device in range(4):
            seen = labels[:, 2 * device:2 * device + 2].ravel()
            assert len(set(seen)) == 8 and set(seen) <= set(range(9 * device, 9 * device + 9))
        for images, step_labels, positions in batches[4 * epoch:4 * epoch + 4]:
            # Every crop keeps some pixels of its own example; the labels are the examples'
            # positions in the split, which the batch carries for CRD's memory bank.
            np.testing.assert_array_equal(images[..., 2].max(axis=(1, 2)), step_labels + 1)
            np.testing.assert_array_equal(positions, step_labels)
    first, second = (np.concatenate([labels for _, labels, _ in batches[i:i + 4]]) for i in (0, 4))
    assert list(first) != list(second)
    resumed = drawn_batches(split, mesh, steps_per_epoch=4, global_batch=8, steps=8)
    for batch, again in zip(batches, resumed):
        jax.tree.map(np.testing.assert_array_equal, batch, again)


def test_augmentation_distribution_is_the_host_paths(mesh):
    """Crop positions and flips uniform over the 162 cells on both paths: a chi-square
    statistic with 161 degrees of freedom below 216 (p = 0.001), and flips near 1/2."""
    count, batch, steps = 64, 64, 128
    split = Split(numbered_images(count), np.arange(count, dtype=np.int32))
    host = [crop_cell(image) for epoch in range(steps)
            for images, _ in train_batches(split, batch, 1, seed=0, epoch=epoch, process_index=0)
            for image in images]
    device = [crop_cell(image) for images, _, _ in
              drawn_batches(device_data.place_split(split, mesh), mesh, steps_per_epoch=1,
                            global_batch=batch, steps=steps)
              for image in images]
    for cells in (host, device):
        assert len(cells) == count * steps
        assert chi_square_against_uniform(np.array(cells)) < 216
        assert abs(np.mean(np.array(cells) % 2) - 0.5) < 0.02
    # What a broken augmentation would score: offsets 0..7 only, or no flips.
    assert chi_square_against_uniform(np.array([cell for cell in device if cell // 2 % 9 != 8])) > 216
    assert chi_square_against_uniform(np.array(device) // 2 * 2) > 216


class DeviceWithMemory:
    def __init__(self, limit):
        self.limit = limit

    def memory_stats(self):
        return {'bytes_limit': self.limit}


def test_a_split_larger_than_a_quarter_of_device_memory_stays_on_the_host():
    split = Split(np.zeros((1000, 32, 32, 3), np.uint8), np.zeros(1000, np.int32))
    devices = [DeviceWithMemory(4 * split.images.nbytes // 2)] * 2  # each shard: exactly a quarter
    assert device_data.fits_on_devices(split, devices)
    assert not device_data.fits_on_devices(split, [DeviceWithMemory(4 * split.images.nbytes // 2 - 1)] * 2)
    assert device_data.fits_on_devices(split, CPU_DEVICES)  # CPU devices report no limit
