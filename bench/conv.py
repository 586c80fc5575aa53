"""Times XLA's convolution against fast_conv.conv2d, jitted, forward with gradients.

    python bench/conv.py [--shape 64,32,32,64] [--kernel 3] [--stride 1] [--groups 1]
                         [--features C] [--repeats 10] [--in-scan K]

The input is N,H,W,C; the conv has `features` output channels and padding kernel // 2. The two
implementations are timed alternately, after a warm-up, so that load on a shared machine
falls on both alike; medians are printed. --in-scan K times each step K times in one
lax.scan, per step, as config.steps_per_dispatch=K runs train steps.
"""
import argparse
import statistics
import time

import jax
import jax.numpy as jnp

from ijckd_jax.models.fast_conv import conv2d, plain_conv2d

# Step name, the arguments differentiated, and how many conv-sized passes the step makes.
STEPS = [('forward + kernel grad', (1,), 2), ('forward + both grads', (0, 1), 3)]


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--shape', default='64,32,32,64', help='input N,H,W,C')
    parser.add_argument('--kernel', type=int, default=3)
    parser.add_argument('--stride', type=int, default=1)
    parser.add_argument('--groups', type=int, default=1, help='C for a depthwise conv')
    parser.add_argument('--features', type=int, help='output channels (default C)')
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--in-scan', type=int, default=1, help='steps per lax.scan (1: no scan)')
    return parser.parse_args(argv)


def step(convolution, argnums, arguments, count):
    """jit(value_and_grad) of sum(conv(inputs, kernel) * cotangent) with respect to `argnums`,
    `count` times in one lax.scan where count > 1."""
    def loss(inputs, kernel, cotangent):
        return jnp.sum(convolution(inputs, kernel, *arguments) * cotangent)
    gradient = jax.value_and_grad(loss, argnums)
    if count == 1:
        return jax.jit(gradient)

    def scanned(inputs, kernel, cotangent):
        def body(inputs, _):
            value, gradients = gradient(inputs, kernel, cotangent)
            # The next step's inputs depend on this one's value, so that XLA cannot hoist the
            # step out of the loop; the factor is 1 in float32.
            return inputs * (1 + 1e-30 * value), gradients
        return jax.lax.scan(body, inputs, length=count)
    return jax.jit(scanned)


def seconds(function, operands):
    start = time.perf_counter()
    jax.block_until_ready(function(*operands))
    return time.perf_counter() - start


def main(argv=None):
    options = parse_arguments(argv)
    batch, height, width, channels = (int(size) for size in options.shape.split(','))
    features = options.features or channels
    arguments = (options.stride, options.kernel // 2, options.groups)
    keys = jax.random.split(jax.random.key(0), 3)
    inputs = jax.random.normal(keys[0], (batch, height, width, channels))
    kernel = jax.random.normal(keys[1], (options.kernel, options.kernel,
                                         channels // options.groups, features))
    output_shape = jax.eval_shape(lambda x, k: plain_conv2d(x, k, *arguments),
                                  inputs, kernel).shape
    cotangent = jax.random.normal(keys[2], output_shape)
    operands = (inputs, kernel, cotangent)
    flops = 2 * output_shape[0] * output_shape[1] * output_shape[2] * features * (
        channels // options.groups) * options.kernel ** 2

    print(f'input {options.shape}, {options.kernel}x{options.kernel} stride {options.stride} '
          f'groups {options.groups}, output {",".join(map(str, output_shape))}: '
          f'{flops / 1e9:.3f} GFLOP per pass, {jax.devices()[0].platform}'
          f"{f', {options.in_scan} steps per lax.scan, times per step' if options.in_scan > 1 else ''}")
    print(f'{"step":<22} {"xla ms":>8} {"GFLOP/s":>8} {"fast ms":>8} {"GFLOP/s":>8} '
          f'{"speed-up":>8}')
    for name, argnums, passes in STEPS:
        functions = [step(convolution, argnums, arguments, options.in_scan)
                     for convolution in (plain_conv2d, conv2d)]
        for function in functions:
            for _ in range(2):
                seconds(function, operands)
        times = [[], []]
        for _ in range(options.repeats):
            for function, measured in zip(functions, times):
                measured.append(seconds(function, operands))
        xla, fast = (statistics.median(measured) / options.in_scan for measured in times)
        gigaflops = passes * flops / 1e9
        print(f'{name:<22} {xla * 1e3:8.2f} {gigaflops / xla:8.1f} '
              f'{fast * 1e3:8.2f} {gigaflops / fast:8.1f} {xla / fast:7.2f}x')


if __name__ == '__main__':
    main()
