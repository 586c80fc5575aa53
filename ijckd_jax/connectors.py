"""Connectors: the student's feature map → the teacher's width (paper §4.2, Table 2; SimKD)."""
import difflib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn

from ijckd_jax.models.layers import BatchNorm, conv

CONNECTORS = ('1x1', '1x1-1x1', '1x1-3x3-1x1')


def check_connector_name(name: str) -> None:
    if name not in CONNECTORS:
        close = difflib.get_close_matches(str(name), CONNECTORS, n=1, cutoff=0.6)
        hint = f" Did you mean '{close[0]}'?" if close else ''
        raise ValueError(f"Unknown connector '{name}';{hint} valid connectors: {', '.join(CONNECTORS)}.")


def pooling_matrix(inputs: int, outputs: int):
    """[outputs, inputs]: F.adaptive_avg_pool2d along one axis, output i the mean of inputs
    floor(i·inputs/outputs) to ceil((i + 1)·inputs/outputs) − 1."""
    matrix = np.zeros((outputs, inputs), np.float32)
    for index in range(outputs):
        start, end = (index * inputs) // outputs, -(-(index + 1) * inputs // outputs)
        matrix[index, start:end] = 1.0 / (end - start)
    return matrix


def adaptive_average_pool(features, height: int, width: int):
    """F.adaptive_avg_pool2d(features, (height, width)) of an NHWC map, summed in float32 and
    returned in the map's dtype: a block mean where the sizes divide, else PyTorch's
    overlapping windows (a matrix product)."""
    batch, in_height, in_width, channels = features.shape
    if (in_height, in_width) == (height, width):
        return features
    if in_height % height == 0 and in_width % width == 0:
        blocks = features.reshape(batch, height, in_height // height, width, in_width // width, channels)
        return blocks.mean(axis=(2, 4), dtype=jnp.float32).astype(features.dtype)
    pooled = jnp.einsum('ih,jw,nhwc->nijc', pooling_matrix(in_height, height), pooling_matrix(in_width, width),
                        features.astype(jnp.float32), precision=jax.lax.Precision.HIGHEST)
    return pooled.astype(features.dtype)


def average_pool_to(features, size: int):
    """A map pooled to size×size, as SimKD aligns maps of different sizes."""
    return adaptive_average_pool(features, size, size)


def pool_to_smaller(first, second):
    """The map of the larger height pooled to the other's height×height, the other unchanged,
    as RepDistiller's at_loss and VIDLoss and SimKD's forward align two maps."""
    first_height, second_height = first.shape[1], second.shape[1]
    if first_height > second_height:
        return average_pool_to(first, second_height), second
    return first, average_pool_to(second, first_height)


class Connector(nn.Module):
    """Convolutions without bias, each followed by BatchNorm and ReLU.

    '1x1': one 1×1 conv to the teacher's width. '1x1-1x1' and '1x1-3x3-1x1': a bottleneck of
    width teacher_channels // factor (SimKD's factor 2) before the last 1×1 conv. Modules are
    named as in SimKD's nn.Sequential 'transfer' (conv, BN, ReLU, conv, ...).
    """
    kind: str
    teacher_channels: int
    factor: int = 2
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, features, train: bool):
        check_connector_name(self.kind)
        bottleneck = self.teacher_channels // self.factor
        layers = {'1x1': [(self.teacher_channels, 1)],
                  '1x1-1x1': [(bottleneck, 1), (self.teacher_channels, 1)],
                  '1x1-3x3-1x1': [(bottleneck, 1), (bottleneck, 3), (self.teacher_channels, 1)]}[self.kind]
        for index, (channels, kernel_size) in enumerate(layers):
            features = conv(channels, kernel_size, padding=kernel_size // 2, dtype=self.dtype,
                            name=f'transfer.{3 * index}')(features)
            features = BatchNorm(dtype=self.dtype, name=f'transfer.{3 * index + 1}')(features, train)
            features = nn.relu(features)
        return features
