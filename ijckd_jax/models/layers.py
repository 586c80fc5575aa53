"""Layers with PyTorch's semantics, so that converted weights give PyTorch's outputs.

Every module is named after the PyTorch module it mirrors ("layer1.0.conv1", "bn1",
"classifier.0"): joining a Flax variable's path with dots gives the PyTorch state-dict key,
which is what lets `ijckd_jax.convert` map any architecture with one rule.
"""
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import flax.linen as nn

# torch.nn.init.kaiming_normal_(mode='fan_out', nonlinearity='relu'), the init the CIFAR
# zoo uses for every convolution.
kaiming_fan_out = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')
# torch.nn.Linear's default: uniform in ±1/sqrt(fan_in).
torch_linear_init = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')


class ModelOutput(NamedTuple):
    """What every backbone returns."""
    logits: jax.Array     # [batch, classes], float32
    features: jax.Array   # [batch, height, width, channels]: the map the classifier pools
    pooled: jax.Array     # [batch, channels], float32: the classifier's input vector


def conv(features, kernel_size, stride=1, padding=0, groups=1, bias=False,
         dtype=jnp.float32, name=None):
    """nn.Conv2d: explicit symmetric padding (Flax's 'SAME' pads stride-2 convs unevenly)."""
    return nn.Conv(features, (kernel_size, kernel_size), strides=(stride, stride),
                   padding=((padding, padding), (padding, padding)),
                   feature_group_count=groups, use_bias=bias, dtype=dtype,
                   param_dtype=jnp.float32, kernel_init=kaiming_fan_out, name=name)


class BatchNorm(nn.Module):
    """nn.BatchNorm2d: normalises with the biased batch variance and tracks the unbiased one.

    `momentum` follows Flax's convention (decay of the running average): 0.9 here is
    PyTorch's momentum=0.1. Statistics are computed in float32 whatever the compute dtype.
    Under a jit whose batch is sharded over devices the batch statistics are global, i.e.
    synchronised BatchNorm.
    """
    momentum: float = 0.9
    epsilon: float = 1e-5
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        channels = x.shape[-1]
        scale = self.param('scale', nn.initializers.ones, (channels,), jnp.float32)
        bias = self.param('bias', nn.initializers.zeros, (channels,), jnp.float32)
        running_mean = self.variable('batch_stats', 'mean', jnp.zeros, (channels,), jnp.float32)
        running_var = self.variable('batch_stats', 'var', jnp.ones, (channels,), jnp.float32)
        x = x.astype(jnp.float32)
        if train:
            axes = tuple(range(x.ndim - 1))
            mean = x.mean(axes)
            variance = jnp.square(x - mean).mean(axes)
            if not self.is_initializing():
                count = x.size // channels
                unbiased = variance * count / max(count - 1, 1)
                decay = self.momentum
                running_mean.value = decay * running_mean.value + (1 - decay) * mean
                running_var.value = decay * running_var.value + (1 - decay) * unbiased
        else:
            mean, variance = running_mean.value, running_var.value
        multiplier = scale * jax.lax.rsqrt(variance + self.epsilon)
        return (x * multiplier + (bias - mean * multiplier)).astype(self.dtype)


def global_average_pool(x):
    """Mean over height and width in float32 (the zoo's AvgPool2d(map size) / AdaptiveAvgPool2d(1))."""
    return x.astype(jnp.float32).mean(axis=(1, 2))


def channel_shuffle(x, groups):
    """ShuffleNet's channel shuffle, in NHWC with PyTorch's channel order."""
    *leading, channels = x.shape
    x = x.reshape(*leading, groups, channels // groups)
    return jnp.swapaxes(x, -1, -2).reshape(*leading, channels)
