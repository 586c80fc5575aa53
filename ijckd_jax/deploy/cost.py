"""What a deployed model costs: parameters, multiply-accumulates per image counted from the
convolutions and linear layers it runs (the field's "MACs"; BatchNorm folded, so none), and
the time of a call."""
import math
import statistics
import time

import jax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np

from ijckd_jax.deploy.inference import predict
from ijckd_jax.models.layers import Conv2d


def count_parameters(variables):
    return int(sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(variables)))


def count_macs(deployed, folded, image_size):
    """Multiply-accumulates of predict on one image, every part of the model together."""
    macs = []

    def interceptor(next_function, args, kwargs, context):
        output = next_function(*args, **kwargs)
        module = context.module
        if context.method_name == '__call__' and isinstance(module, Conv2d):
            per_output = module.kernel_size ** 2 * args[0].shape[-1] // module.groups
            macs.append(math.prod(output.shape[1:]) * per_output)
        elif context.method_name == '__call__' and isinstance(module, nn.Dense):
            macs.append(args[0].shape[-1] * module.features)
        return output

    def traced(images):
        with nn.intercept_methods(interceptor):
            return predict(deployed, folded.variables, images, folded.pairs)

    jax.eval_shape(traced, jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.uint8))
    return int(sum(macs))


def median_seconds(call, repeats):
    """Median seconds of `call()` over `repeats` calls, after a warm-up call (which compiles)."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def latency(serialized, image_size, batch, repeats=20):
    """Median seconds of one call of a serialized artifact on a uint8 batch."""
    exported = jax.export.deserialize(bytearray(serialized))
    images = np.zeros((batch, image_size, image_size, 3), np.uint8)
    return median_seconds(lambda: jax.block_until_ready(exported.call(images)), repeats)
