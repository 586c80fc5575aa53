"""A 2-D convolution whose kernel gradient is one matrix product per kernel tap.

Why: on CPU, XLA's kernel gradient of some convolutions runs far below matrix-product
speed. An earlier measurement found 3×3 convolutions on large maps at 3-7 GFLOP/s (PyTorch's
conv backward: ~85, a plain matrix product: ~115-140), and ~25 GFLOP/s for the same gradient
written as kH×kW products, each of the input shifted by one tap (as [N·H_out·W_out, C_in])
with the output gradient (as [N·H_out·W_out, C_out]), equal to autodiff's within 2e-6
relative. Measured again with jax 0.10.2 on a shared 2-core CPU (bench/conv.py), XLA's
dense 3×3 kernel gradient was fast (65-145 GFLOP/s, ahead of the tap products' 40-100), but
its 1×1 one ran at 11-17 GFLOP/s, its grouped 1×1 one at 2-5 and its depthwise 3×3 one at
0.2-1.1, where the tap products were 4-5×, 7-10× and 1.1-4× faster. The forward pass and
the input gradient are XLA's own.

This is a CPU workaround: on GPU, XLA's convolution gradients should be left alone.
"""
import functools

import jax
import jax.numpy as jnp
from jax import lax


def plain_conv2d(inputs, kernel, stride, padding, groups):
    """XLA's convolution: NHWC inputs, HWIO kernel, symmetric padding."""
    return lax.conv_general_dilated(inputs, kernel, (stride, stride),
                                    ((padding, padding), (padding, padding)),
                                    dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                    feature_group_count=groups)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv2d(inputs, kernel, stride, padding, groups):
    """`plain_conv2d`, with the kernel gradient computed tap by tap (see the module docstring)."""
    return plain_conv2d(inputs, kernel, stride, padding, groups)


def conv2d_forward(inputs, kernel, stride, padding, groups):
    """The output, and the residuals the backward pass needs."""
    return plain_conv2d(inputs, kernel, stride, padding, groups), (inputs, kernel)


def conv2d_backward(stride, padding, groups, residuals, output_gradient):
    """XLA's input gradient and the tap-by-tap kernel gradient."""
    inputs, kernel = residuals
    _, input_vjp = jax.vjp(lambda x: plain_conv2d(x, kernel, stride, padding, groups), inputs)
    (input_gradient,) = input_vjp(output_gradient)
    return input_gradient, kernel_gradient(inputs, output_gradient, kernel, stride, padding, groups)


conv2d.defvjp(conv2d_forward, conv2d_backward)


def kernel_gradient(inputs, output_gradient, kernel, stride, padding, groups):
    """d(loss)/d(kernel) as [kH, kW, C_in/groups, C_out], one product per tap, in float32."""
    height, width = kernel.shape[:2]
    padded = jnp.pad(inputs, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    outputs = output_gradient.reshape(-1, output_gradient.shape[-1])
    rows = [jnp.stack([tap_product(tap(padded, row, column, stride, output_gradient.shape[1:3]),
                                   outputs, groups)
                       for column in range(width)])
            for row in range(height)]
    return jnp.stack(rows).astype(kernel.dtype)


def tap(padded, row, column, stride, output_size):
    """The input pixels that kernel tap (row, column) meets, as [N·H_out·W_out, C_in]."""
    output_height, output_width = output_size
    window = lax.slice(padded, (0, row, column, 0),
                       (padded.shape[0], row + stride * (output_height - 1) + 1,
                        column + stride * (output_width - 1) + 1, padded.shape[3]),
                       (1, stride, stride, 1))
    return window.reshape(-1, padded.shape[3])


def tap_product(inputs, outputs, groups):
    """inputsᵀ · outputs per group, as the [C_in/groups, C_out] slice of the kernel gradient."""
    if groups == 1:
        return jnp.matmul(inputs.T, outputs, preferred_element_type=jnp.float32)
    pixels = inputs.shape[0]
    inputs = inputs.reshape(pixels, groups, -1)
    outputs = outputs.reshape(pixels, groups, -1)
    if inputs.shape[2] == 1:
        # Depthwise: each group's product is a dot product over the pixels.
        products = jnp.sum(inputs.astype(jnp.float32) * outputs.astype(jnp.float32), axis=0)
        return products.reshape(1, -1)
    products = lax.dot_general(inputs, outputs, (((0,), (0,)), ((1,), (1,))),
                               preferred_element_type=jnp.float32)  # [groups, C_in/g, C_out/g]
    return products.transpose(1, 0, 2).reshape(inputs.shape[2], -1)
