"""Connectors: the student's feature map → the teacher's width (paper §4.2, Table 2; SimKD)."""
import difflib
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from ijckd_jax.models.layers import BatchNorm, conv

CONNECTORS = ('1x1', '1x1-1x1', '1x1-3x3-1x1')


def check_connector_name(name: str) -> None:
    if name not in CONNECTORS:
        close = difflib.get_close_matches(str(name), CONNECTORS, n=1, cutoff=0.6)
        hint = f" Did you mean '{close[0]}'?" if close else ''
        raise ValueError(f"Unknown connector '{name}';{hint} valid connectors: {', '.join(CONNECTORS)}.")


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
