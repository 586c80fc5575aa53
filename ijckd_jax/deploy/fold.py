"""BatchNorm folded for inference, for any module built from our layers (Conv2d, BatchNorm).

At test time BatchNorm is a per-channel affine map, y = s·x + (β − μ·s) with
s = γ / sqrt(σ² + ε). Where its input is a convolution's output and nothing else, s goes into
the convolution's kernel and the shift becomes the convolution's bias: conv(x, W)·s + b =
conv(x, W·s) + b. A BatchNorm whose input is not a convolution's (a pre-activation block
after a residual sum) becomes the affine map alone.

Which BatchNorm reads which convolution is found by tracing the module once (`trace_pairs`):
no model needs to declare it. `fold_batch_norm` is then a function of the variables, and
`folded` applies the module to them.
"""
import contextlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import flax.linen as nn
from flax import traverse_util

from ijckd_jax.models.layers import BatchNorm, Conv2d


class Pairs(NamedTuple):
    """The BatchNorms of a module by path: those folded into the convolution they read, and
    the rest (kept as an affine map)."""
    folded: dict    # BatchNorm path -> the path of the convolution whose output it reads
    affine: tuple   # BatchNorm paths
    epsilon: dict   # BatchNorm path -> its ε


def path_of(module):
    return tuple(module.path)


def trace_pairs(module, variables, *arguments, **keywords) -> Pairs:
    """Traces module.apply(variables, *arguments, **keywords) (arrays or their shapes; the
    keywords static) and pairs each BatchNorm with the convolution whose output is its input.
    A convolution output that another module also reads, or that the module returns, is not
    folded into. (A plain jnp operation reading it would not be seen here: the tests fold
    every model of the zoo and compare its logits.)"""
    convolution_outputs, reads, batch_norm_inputs, epsilon = {}, {}, {}, {}
    arguments_seen = []  # kept alive, so that no id counted in `reads` is reused

    def interceptor(next_function, args, kwargs, context):
        for argument in jax.tree.leaves((args, kwargs)):
            arguments_seen.append(argument)
            reads[id(argument)] = reads.get(id(argument), 0) + 1
        output = next_function(*args, **kwargs)
        if isinstance(context.module, Conv2d) and context.method_name == '__call__':
            convolution_outputs[id(output)] = (path_of(context.module), output)
        if isinstance(context.module, BatchNorm) and context.method_name == '__call__':
            batch_norm_inputs[path_of(context.module)] = id(args[0])
            epsilon[path_of(context.module)] = context.module.epsilon
        return output

    def traced(variables, *arguments):
        with nn.intercept_methods(interceptor):
            output = module.apply(variables, *arguments, **keywords)
        returned = {id(leaf) for leaf in jax.tree.leaves(output)}
        folded, affine = {}, []
        for batch_norm, source in batch_norm_inputs.items():
            single_reader = reads.get(source) == 1 and source not in returned
            if source in convolution_outputs and single_reader:
                folded[batch_norm] = convolution_outputs[source][0]
            else:
                affine.append(batch_norm)
        pairs.append(Pairs(folded, tuple(affine), epsilon))
        return output

    pairs = []
    jax.eval_shape(traced, variables, *arguments)
    return pairs[0]


def fold_batch_norm(variables, pairs: Pairs):
    """{'params': ...} with every BatchNorm folded: its convolution's kernel scaled and given
    a bias, or the BatchNorm's own {'scale', 'bias'} the affine map; no batch_stats."""
    params = traverse_util.flatten_dict(variables['params'])
    statistics = traverse_util.flatten_dict(variables.get('batch_stats', {}))
    for batch_norm in (*pairs.folded, *pairs.affine):
        gamma, beta = params.pop(batch_norm + ('scale',)), params.pop(batch_norm + ('bias',))
        mean, variance = statistics[batch_norm + ('mean',)], statistics[batch_norm + ('var',)]
        scale = gamma * jax.lax.rsqrt(variance + pairs.epsilon[batch_norm])
        shift = beta - mean * scale
        if batch_norm in pairs.folded:
            convolution = pairs.folded[batch_norm]
            params[convolution + ('kernel',)] = params[convolution + ('kernel',)] * scale
            bias = params.get(convolution + ('bias',), jnp.zeros_like(shift))
            params[convolution + ('bias',)] = bias * scale + shift
        else:
            params[batch_norm + ('scale',)], params[batch_norm + ('bias',)] = scale, shift
    return {'params': traverse_util.unflatten_dict(params)}


@contextlib.contextmanager
def folded(pairs: Pairs):
    """Within it, module.apply takes fold_batch_norm's variables: a folded BatchNorm passes
    its input on, the convolution adds its bias; an affine one scales and shifts."""
    def interceptor(next_function, args, kwargs, context):
        if context.method_name != '__call__':
            return next_function(*args, **kwargs)
        module, path = context.module, path_of(context.module)
        if isinstance(module, BatchNorm) and path in pairs.folded:
            return args[0]
        if isinstance(module, BatchNorm):
            x = args[0].astype(jnp.float32)
            scale, shift = module.get_variable('params', 'scale'), module.get_variable('params', 'bias')
            return (x * scale + shift).astype(module.dtype)
        output = next_function(*args, **kwargs)
        if isinstance(module, Conv2d) and path in pairs.folded.values() and not module.use_bias:
            output = output + module.get_variable('params', 'bias').astype(output.dtype)
        return output

    with nn.intercept_methods(interceptor):
        yield
