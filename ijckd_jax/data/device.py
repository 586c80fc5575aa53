"""CIFAR-sized training data held on the devices: the split is sharded over the mesh once,
and every step draws, crops and flips its batch inside the jitted step, so no host input
pipeline runs in the training loop.

Each device owns an equal, contiguous shard of its process's part of the split and visits
it in a fresh random order every epoch, taking global_batch / devices examples per step:
the host path's per-process parts (pipeline.train_batches), one level down. The augmentation is
the host path's: a crop of the image zero-padded by 4, at offsets uniform in 0..8, flipped
with probability 1/2 (torchvision's RandomCrop(32, padding=4) + RandomHorizontalFlip).
The epoch's order comes from (seed, epoch, device) and each step's crops from (seed, step,
device), so a resumed run draws exactly what an uninterrupted one would. The seed is an
argument of the jitted functions, not a constant, so that runs of several seeds draw their
own batches in one step (vmapped over seeds).
"""
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec

from ijckd_jax.data.augment import PADDING
from ijckd_jax.data.split import Split, agree

# The split goes on the devices only if its shard takes at most this part of a device's memory.
MEMORY_FRACTION = 0.25
ORDER, AUGMENTATION, OBJECTIVE = 0, 1, 2  # streams of random numbers, folded into the seed's key


class DeviceSplit(NamedTuple):
    images: jax.Array  # uint8 [examples, height, width, 3], sharded over 'data'
    labels: jax.Array  # int32 [examples], sharded over 'data'


def fits_on_devices(split: Split, devices) -> bool:
    """Whether every process's shard of `split` fits in MEMORY_FRACTION of its devices'
    memory. CPU devices report no limit: they share the host memory that holds the split."""
    shard_bytes = split.images.nbytes // len(devices)
    limits = [(device.memory_stats() or {}).get('bytes_limit') for device in devices]
    fits = all(limit is None or shard_bytes <= MEMORY_FRACTION * limit for limit in limits)
    return bool(agree(int(fits), np.min))


def place_split(split: Split, mesh) -> DeviceSplit:
    """This process's part of the split as the process's shards of one global array.

    Every device keeps the same number of examples (the smallest over processes, rounded
    down to a multiple of the process's devices); at most devices - 1 examples of a part
    are never used.
    """
    local_devices = len(mesh.mesh.local_devices)
    per_device = agree(len(split.labels) // local_devices, np.min)
    kept = per_device * local_devices
    return DeviceSplit(*mesh.shard(split.images[:kept], split.labels[:kept]))


def crop_and_flip(images, offsets, flips):
    """augment.crop_and_flip on the device: crops of the zero-padded images at `offsets`
    (top, left), mirrored left to right where `flips`."""
    size, channels = images.shape[1], images.shape[3]
    padded = jnp.pad(images, ((0, 0), (PADDING, PADDING), (PADDING, PADDING), (0, 0)))
    crop = lambda image, offset: jax.lax.dynamic_slice(  # noqa: E731
        image, (offset[0], offset[1], 0), (size, size, channels))
    crops = jax.vmap(crop)(padded, offsets)
    return jnp.where(flips[:, None, None, None], crops[:, :, ::-1], crops)


def device_key(seed, stream, count):
    """The key of (seed, stream, count) on this device: inside shard_map over 'data'."""
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), stream), count)
    return jax.random.fold_in(key, jax.lax.axis_index('data'))


def shard_order(labels, epoch, seed):
    """A random permutation of this device's examples for `epoch`."""
    return jax.random.permutation(device_key(seed, ORDER, epoch), len(labels)).astype(jnp.int32)


def epoch_order(split: DeviceSplit, epoch, mesh, seeds):
    """The order each device visits its shard in during `epoch`, sharded as the split: [N]
    for one seed, [seeds, N] for an array of them (runs of several seeds trained together)."""
    seeds = np.asarray(seeds, np.int32)
    return order_function(mesh, seeds.ndim)(split.labels, epoch, seeds)


@functools.cache
def order_function(mesh, seed_dimensions):
    """shard_order over every device (and over seeds, for an array of them), jitted once."""
    order = jax.shard_map(shard_order, mesh=mesh.mesh, in_specs=(PartitionSpec('data'), PartitionSpec(),
                                                                 PartitionSpec()),
                          out_specs=PartitionSpec('data'))
    return jax.jit(jax.vmap(order, in_axes=(None, None, 0)) if seed_dimensions else order)


def shard_batch(images, labels, order, step, seed, *, steps_per_epoch, batch):
    """This device's `batch` examples of global step `step`, cropped and flipped, and their
    positions in the whole split (the shards are equal and in device order)."""
    start = (step % steps_per_epoch) * batch
    indices = jax.lax.dynamic_slice_in_dim(order, start, batch)
    offset_key, flip_key = jax.random.split(device_key(seed, AUGMENTATION, step))
    offsets = jax.random.randint(offset_key, (batch, 2), 0, 2 * PADDING + 1)
    flips = jax.random.bernoulli(flip_key, 0.5, (batch,))
    positions = jax.lax.axis_index('data') * len(labels) + indices
    return crop_and_flip(images[indices], offsets, flips), labels[indices], positions


def draw_batch(split: DeviceSplit, order, step, seed, mesh, *, steps_per_epoch, global_batch):
    """The global batch of `step` (images, labels and each example's position in the split,
    which CRD's memory bank is indexed by), sharded over 'data'; call it inside a jitted step."""
    batch = global_batch // mesh.mesh.size
    sharded, replicated = PartitionSpec('data'), PartitionSpec()
    draw = jax.shard_map(
        functools.partial(shard_batch, steps_per_epoch=steps_per_epoch, batch=batch),
        mesh=mesh.mesh, in_specs=(sharded, sharded, sharded, replicated, replicated),
        out_specs=(sharded, sharded, sharded))
    return draw(split.images, split.labels, order, step, seed)


def objective_key(seed, step):
    """The key of `step` for objectives that draw at random (CRD's negatives): one key for the
    whole global batch, so that any number of devices draws the same."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), OBJECTIVE), step)
