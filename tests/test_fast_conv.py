"""fast_conv.conv2d against XLA's convolution and its autodiff, for every conv shape of the zoo."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ijckd_jax.models.fast_conv import conv2d, plain_conv2d

# (kernel size, stride, padding, groups, input channels, output channels); groups=None is
# depthwise (groups = channels).
SHAPES = {
    '3x3_s1': (3, 1, 1, 1, 4, 6),
    '3x3_s2': (3, 2, 1, 1, 4, 6),
    '1x1_s1': (1, 1, 0, 1, 4, 6),
    '1x1_s2': (1, 2, 0, 1, 4, 6),
    '7x7_s2': (7, 2, 3, 1, 3, 5),
    'depthwise_3x3_s1': (3, 1, 1, None, 6, 6),
    'depthwise_3x3_s2': (3, 2, 1, None, 6, 6),
    'grouped_1x1_g3': (1, 1, 0, 3, 6, 9),
}


def problem(name, size, dtype=jnp.float32):
    """Unit-scale inputs, kernel and output cotangent, and the conv's static arguments."""
    kernel_size, stride, padding, groups, channels, features = SHAPES[name]
    groups = groups or channels
    keys = jax.random.split(jax.random.key(size), 3)
    inputs = jax.random.normal(keys[0], (2, size, size, channels), dtype)
    kernel_shape = (kernel_size, kernel_size, channels // groups, features)
    kernel = jax.random.normal(keys[1], kernel_shape, dtype)
    output = plain_conv2d(inputs, kernel, stride, padding, groups)
    cotangent = jax.random.normal(keys[2], output.shape, dtype)
    return inputs, kernel, cotangent, (stride, padding, groups)


def gradients(convolution, inputs, kernel, cotangent, arguments):
    """The output and d(sum(output * cotangent))/d(inputs, kernel)."""
    output, vjp = jax.vjp(lambda x, k: convolution(x, k, *arguments), inputs, kernel)
    return (output, *vjp(cotangent))


def assert_close(actual, expected, rtol):
    """rtol, plus an absolute tolerance of rtol × the largest entry for near-zero entries."""
    expected = np.asarray(expected, np.float32)
    np.testing.assert_allclose(np.asarray(actual, np.float32), expected, rtol=rtol,
                               atol=rtol * np.abs(expected).max())


# Eager dispatch compiles every op on its own (49 taps for the 7×7), so it runs at one size only.
@pytest.mark.parametrize('size, jit', [(8, True), (9, True), (9, False)],
                         ids=['8-jit', '9-jit', '9-eager'])
@pytest.mark.parametrize('name', SHAPES)
def test_matches_xla(name, size, jit):
    inputs, kernel, cotangent, arguments = problem(name, size)
    fast, plain = conv2d, plain_conv2d
    if jit:
        fast = jax.jit(conv2d, static_argnums=(2, 3, 4))
        plain = jax.jit(plain_conv2d, static_argnums=(2, 3, 4))
    output, input_gradient, kernel_gradient = gradients(fast, inputs, kernel, cotangent, arguments)
    expected = gradients(plain, inputs, kernel, cotangent, arguments)
    np.testing.assert_allclose(output, expected[0], rtol=0, atol=1e-6)
    assert kernel_gradient.shape == kernel.shape and kernel_gradient.dtype == kernel.dtype
    assert_close(input_gradient, expected[1], rtol=1e-5)
    assert_close(kernel_gradient, expected[2], rtol=1e-5)


@pytest.mark.quick
@pytest.mark.parametrize('name', SHAPES)
def test_bfloat16(name):
    inputs, kernel, cotangent, arguments = problem(name, 9, jnp.bfloat16)
    output, input_gradient, kernel_gradient = jax.jit(gradients, static_argnums=(0, 4))(
        conv2d, inputs, kernel, cotangent, arguments)
    assert output.dtype == input_gradient.dtype == kernel_gradient.dtype == jnp.bfloat16
    # Against float32 autodiff of the same bfloat16 values. bfloat16 keeps 8 significant bits
    # (2^-8 ≈ 0.4% relative per rounding); the kernel gradient is accumulated in float32 and
    # rounded once, XLA's output and input gradient maybe a few times, so 2% of the largest
    # entry bounds them all while a wrong tap or group would be off by ~100%.
    upcast = (array.astype(jnp.float32) for array in (inputs, kernel, cotangent))
    expected = gradients(plain_conv2d, *upcast, arguments)
    for actual, reference in zip((output, input_gradient, kernel_gradient), expected):
        reference = np.asarray(reference)
        np.testing.assert_allclose(np.asarray(actual, np.float32), reference, rtol=0,
                                   atol=2e-2 * np.abs(reference).max())
