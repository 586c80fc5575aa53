"""The arithmetic a run asks for reaches the compiled code, the compilation cache is hit, and
JAX's probes of absent platforms stay off the console."""
import logging
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from ijckd_jax.runtime import describe_arithmetic, matmul_precision, quiet_platform_probes


@pytest.mark.quick
@pytest.mark.parametrize('name, compiled', [('default', 'DEFAULT'), ('tensorfloat32', 'HIGH'),
                                            ('float32', 'HIGHEST')])
def test_matmul_precision_reaches_matrix_products_and_convolutions(name, compiled):
    images = jnp.ones((1, 4, 4, 3))
    kernel = jnp.ones((3, 3, 3, 2))

    def layer(images, kernel):
        features = jax.lax.conv_general_dilated(images, kernel, (1, 1), 'SAME',
                                                dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
        return features.reshape(1, -1) @ jnp.ones((32, 5))

    with matmul_precision(name):
        text = jax.jit(layer).lower(images, kernel).as_text()
    assert text.count(f'precision = [{compiled}, {compiled}]') == 1  # the matrix product
    assert text.count(f'#stablehlo<precision {compiled}>, #stablehlo<precision {compiled}>') == 1


@pytest.mark.quick
def test_the_log_says_what_float32_means_here():
    assert describe_arithmetic('float32', 'default') == \
        'Arithmetic: dtype float32, matmul and convolution precision default on cpu.'


@pytest.mark.quick
def test_only_the_probes_of_absent_platforms_are_kept_off_the_console(caplog):
    """"Unable to initialize backend 'tpu'" is logged at INFO; the same logger's warnings (a GPU
    without a CUDA jaxlib) still show."""
    caplog.set_level(logging.INFO)  # the console's level, as absl's app.run sets it
    caplog.set_level(logging.NOTSET, logger='jax._src.xla_bridge')  # its level, restored after the test
    probes = logging.getLogger('jax._src.xla_bridge')
    assert probes.isEnabledFor(logging.INFO)
    quiet_platform_probes()
    assert not probes.isEnabledFor(logging.INFO) and probes.isEnabledFor(logging.WARNING)


CACHED_COMPILE = """
import sys
import jax, jax.numpy as jnp
from ijckd_jax.runtime import enable_compilation_cache
hits = []
jax.monitoring.register_event_listener(lambda name, **kwargs: hits.append(name))
enable_compilation_cache(sys.argv[1])
jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((8, 8)))
print(hits.count('/jax/compilation_cache/cache_hits'), hits.count('/jax/compilation_cache/cache_misses'))
"""


def test_a_second_process_finds_the_compiled_code_in_the_cache(tmp_path):
    runs = [subprocess.run([sys.executable, '-c', CACHED_COMPILE, str(tmp_path / 'xla')],
                           capture_output=True, text=True, timeout=300) for _ in range(2)]
    assert [run.returncode for run in runs] == [0, 0], runs[0].stderr[-2000:]
    (first_hits, compiled), (second_hits, second_misses) = [map(int, run.stdout.split()[-2:]) for run in runs]
    assert first_hits == 0 and compiled >= 1  # the first process compiles and fills the cache ...
    assert (second_hits, second_misses) == (compiled, 0)  # ... the second compiles nothing
    assert any((tmp_path / 'xla').iterdir())
