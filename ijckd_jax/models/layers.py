"""Layers with PyTorch's semantics, so that converted weights give PyTorch's outputs.

Every module is named after the PyTorch module it mirrors ("layer1.0.conv1", "bn1",
"classifier.0"): joining a Flax variable's path with dots gives the PyTorch state-dict key,
which is what lets `ijckd_jax.convert` map any architecture with one rule.
"""
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn

from ijckd_jax.models import fast_conv

# torch.nn.init.kaiming_normal_(mode='fan_out', nonlinearity='relu'), the init the CIFAR
# zoo uses for every convolution.
kaiming_fan_out = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')
# torch.nn.Linear's default: uniform in ±1/sqrt(fan_in); torch.nn.Conv2d's too (kaiming_uniform
# with a = √5), for modules that keep PyTorch's default initialisation.
torch_linear_init = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')
torch_conv_init = torch_linear_init


def torch_bias_init(fan_in):
    """PyTorch's default bias of a linear layer or convolution: uniform in ±1/sqrt(fan_in)."""
    bound = 1.0 / fan_in ** 0.5
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


class ModelOutput(NamedTuple):
    """What every backbone returns."""
    logits: jax.Array     # [batch, classes], float32
    features: jax.Array   # [batch, height, width, channels]: the map the classifier pools
    pooled: jax.Array     # [batch, channels], float32: the classifier's input vector
    # The intermediate maps RepDistiller's models return as feat[:-1] and mdistiller's ImageNet
    # models as feats["feats"] (mostly the stem's output, then each stage's; each family's
    # docstring says which), the maps FitNet, AT and VID distil.
    stages: tuple = ()
    # mdistiller's feats["preact_feats"]: the same maps taken before their ReLU where the source
    # has one (each family's docstring says which), the maps OFD distils.
    preact_stages: tuple = ()
    # (scale, bias) of each BatchNorm that mdistiller's get_bn_before_relu() lists, [channels]
    # float32 each, read from the variables (norm_affine): what OFD computes its margins from.
    # Empty where the source has none (the ShuffleNets).
    preact_norms: tuple = ()


def conv(features, kernel_size, stride=1, padding=0, groups=1, bias=False,
         dtype=jnp.float32, name=None):
    """nn.Conv2d: explicit symmetric padding (Flax's 'SAME' pads stride-2 convs unevenly)."""
    return Conv2d(features, kernel_size, stride, padding, groups, bias, dtype, name=name)


def use_tap_gradient(kernel_size, groups):
    """Whether fast_conv's kernel gradient beats XLA's here: on CPU, for 1×1 and grouped or
    depthwise convolutions (2-11× in bench/conv.py; XLA's own is faster for dense 3×3 and
    7×7). On GPU XLA's convolutions are left alone."""
    return jax.default_backend() == 'cpu' and (kernel_size == 1 or groups > 1)


class Conv2d(nn.Module):
    """A convolution with nn.Conv's variables ('kernel' [kH, kW, C_in/groups, C_out], 'bias')."""
    features: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    use_bias: bool = False
    dtype: Any = jnp.float32
    kernel_init: Callable = kaiming_fan_out

    @nn.compact
    def __call__(self, inputs):
        shape = (self.kernel_size, self.kernel_size, inputs.shape[-1] // self.groups, self.features)
        kernel = self.param('kernel', self.kernel_init, shape, jnp.float32).astype(self.dtype)
        convolve = fast_conv.conv2d if use_tap_gradient(self.kernel_size, self.groups) else fast_conv.plain_conv2d
        outputs = convolve(inputs.astype(self.dtype), kernel, self.stride, self.padding, self.groups)
        if self.use_bias:
            outputs = outputs + self.param('bias', nn.initializers.zeros, (self.features,),
                                           jnp.float32).astype(self.dtype)
        return outputs


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


def norm_affine(module, *path):
    """(scale, bias) of the BatchNorm at `path` (module names) below `module`, which has already
    called it: the pair mdistiller's get_bn_before_relu() hands OFD. None where the variables
    hold no such parameters (a BatchNorm folded for inference, ijckd_jax/deploy/fold.py)."""
    params = module.variables.get('params', {})
    for name in path:
        params = params.get(name, {})
    if 'scale' not in params or 'bias' not in params:
        return None
    return params['scale'], params['bias']


def global_average_pool(x):
    """Mean over height and width in float32 (the zoo's AvgPool2d(map size) / AdaptiveAvgPool2d(1))."""
    return x.astype(jnp.float32).mean(axis=(1, 2))


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


def channel_shuffle(x, groups):
    """ShuffleNet's channel shuffle, in NHWC with PyTorch's channel order."""
    *leading, channels = x.shape
    x = x.reshape(*leading, groups, channels // groups)
    return jnp.swapaxes(x, -1, -2).reshape(*leading, channels)
