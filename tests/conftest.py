"""Test-wide settings and the shared teacher.

Four CPU devices, so that every jitted step runs sharded as on a GPU host, and fast
compiles, since the compiled code's speed does not matter here.
"""
import os
import subprocess
import sys

import jax
import pytest

jax.config.update('jax_num_cpu_devices', 4)
jax.config.update('jax_disable_most_optimizations', True)
# Full float32 matrix products and convolutions: XLA's default on GPUs is TF32, which moves a
# resnet8's logits by ~1.5e-4 from PyTorch's, beyond the parity tests' 1e-4. No effect on CPUs.
jax.config.update('jax_default_matmul_precision', 'float32')

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The multi-device tests run on four CPU devices, which exist on GPU machines too.
CPU_DEVICES = jax.devices('cpu')
EXAMPLES = 32  # per mocked split


def run_main(arguments, tmp_path):
    """python main.py ARGUMENTS under tfds.testing.mock_data, as a user runs it."""
    script = ('import runpy, sys, tensorflow_datasets as tfds\n'
              f'sys.argv = ["main.py"] + {arguments!r}\n'
              f'with tfds.testing.mock_data(num_examples={EXAMPLES}):\n'
              f'    runpy.run_path({os.path.join(REPOSITORY, "main.py")!r}, run_name="__main__")\n')
    return subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)


@pytest.fixture(scope='session')
def teacher(tmp_path_factory):
    """A resnet8 teacher trained through main.py, its run directory, its log, and the
    compilation cache it filled (a temporary one, not the user's)."""
    workdir, cache = tmp_path_factory.mktemp('teacher'), tmp_path_factory.mktemp('xla')
    result = run_main(['--config', os.path.join(REPOSITORY, 'configs/cifar_teacher.py:resnet8'),
                       '--workdir', str(workdir), '--config.num_epochs=2', '--config.steps_per_epoch=2',
                       '--config.global_batch_size=8', '--config.eval_batch_size=8',
                       '--config.log_every_steps=1', f'--config.compilation_cache={cache}'], workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, result.stderr, cache
