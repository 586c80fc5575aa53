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

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
    """A resnet8 teacher trained through main.py, and its run directory."""
    workdir = tmp_path_factory.mktemp('teacher')
    result = run_main(['--config', os.path.join(REPOSITORY, 'configs/cifar_teacher.py:resnet8'),
                       '--workdir', str(workdir), '--config.num_epochs=2', '--config.steps_per_epoch=2',
                       '--config.global_batch_size=8', '--config.eval_batch_size=8',
                       '--config.log_every_steps=1'], workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, result.stderr
