"""What the process computes with: optional TensorFlow, the platform, the arithmetic precision
of float32 matrix products and convolutions, and XLA's persistent compilation cache."""
import importlib.util
import logging
import os

import jax

# jax_default_matmul_precision for float32 matrix products and convolutions. 'default' is
# XLA's choice: TF32 (10-bit mantissa inputs) on Ampere and later NVIDIA GPUs, full float32
# on CPUs; 'float32' asks for full float32 everywhere.
MATMUL_PRECISIONS = ('default', 'tensorfloat32', 'float32')


def tensorflow_installed() -> bool:
    """Whether `import tensorflow` can work, found without importing it (a few seconds)."""
    try:
        return importlib.util.find_spec('tensorflow') is not None
    except ImportError:
        return False


def quiet_platform_probes():
    """Keeps JAX's probes of platforms that are absent ("Unable to initialize backend 'tpu'",
    logged at INFO on every start) off the console. Nothing else is hidden: that logger says
    nothing else at INFO, its warnings (e.g. a GPU present without a CUDA jaxlib) still show,
    and a platform asked for with JAX_PLATFORMS that fails raises an error."""
    logging.getLogger('jax._src.xla_bridge').setLevel(logging.WARNING)


def matmul_precision(name):
    """A context in which the float32 matrix products and convolutions of what is jitted use
    `name`, whatever JAX's own setting is."""
    return jax.default_matmul_precision(name)


def describe_arithmetic(dtype, precision):
    """One line on what float32 means on this backend, for the start of a run."""
    backend = jax.default_backend()
    tf32 = backend == 'gpu' and precision != 'float32' and dtype == 'float32'
    note = (' (TF32 inputs on Ampere and later GPUs; --config.matmul_precision=float32 for full '
            'float32)' if tf32 else '')
    return f'Arithmetic: dtype {dtype}, matmul and convolution precision {precision} on {backend}{note}.'


def enable_compilation_cache(directory):
    """XLA's persistent compilation cache in `directory` (with its GPU autotuning results), so
    that a run compiled before starts without compiling; '' leaves it off."""
    if not directory:
        return
    directory = os.path.expanduser(directory)
    jax.config.update('jax_compilation_cache_dir', directory)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
    jax.config.update('jax_persistent_cache_enable_xla_caches', 'xla_gpu_per_fusion_autotune_cache_dir')


def describe_compilation_cache():
    """One line on where compiled programs are kept, for the start of a run."""
    directory = jax.config.jax_compilation_cache_dir
    return f'Compilation cache: {directory}.' if directory else 'Compilation cache: off.'
