"""Test-wide settings, the compilation cache of the test run, and the shared teacher.

Four CPU devices, so that every jitted step runs sharded as on a GPU host, and fast
compiles, since the compiled code's speed does not matter here: in this process and in every
program a test starts. What the run compiles is kept in one persistent compilation cache that
its pytest-xdist workers and subprocesses share, so that a program is compiled once per run.
"""
import contextlib
import fcntl
import json
import os
import subprocess
import sys

import jax
import pytest
import tensorflow_datasets as tfds

# PyTorch (the parity tests' references) with one thread, here and in the programs the tests
# start: the suite's two workers already keep two cores busy, and a pool of two threads in each
# spent ~15% more CPU time on tests/test_models.py, test_fast_conv.py and test_deploy.py (two
# workers: 142 s -> 121 s). Read when torch is first imported: by the test modules, after this.
os.environ['OMP_NUM_THREADS'] = '1'

jax.config.update('jax_num_cpu_devices', 4)
jax.config.update('jax_disable_most_optimizations', True)
# Full float32 matrix products and convolutions: XLA's default on GPUs is TF32, which moves a
# resnet8's logits by ~1.5e-4 from PyTorch's, beyond the parity tests' 1e-4. No effect on CPUs.
jax.config.update('jax_default_matmul_precision', 'float32')

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The multi-device tests run on four CPU devices, which exist on GPU machines too.
CPU_DEVICES = jax.devices('cpu')
EXAMPLES = 32  # per mocked split


def run_directory(tmp_path_factory, config):
    """A folder of this test run that all its pytest-xdist workers share."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if hasattr(config, 'workerinput') else base


@pytest.fixture(scope='session', autouse=True)
def compilation_cache(tmp_path_factory, pytestconfig):
    """XLA's persistent compilation cache for the test run, here and, through the environment,
    in the programs the tests start; those compile with most optimizations off too."""
    directory = str(run_directory(tmp_path_factory, pytestconfig) / 'xla')
    jax.config.update('jax_compilation_cache_dir', directory)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
    os.environ.update(JAX_COMPILATION_CACHE_DIR=directory, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
                      JAX_DISABLE_MOST_OPTIMIZATIONS='true')
    return directory


@pytest.fixture(scope='session', autouse=True)
def folder_cache(tmp_path_factory, pytestconfig):
    """The cache of decoded image folders (data/folders.py) in the test run's folder, here and in
    the programs the tests start, not in the user's ~/.cache."""
    directory = str(run_directory(tmp_path_factory, pytestconfig) / 'folders')
    os.environ['IJCKD_JAX_FOLDER_CACHE'] = directory
    return directory


def cpu_devices_environment(devices):
    """This process's environment for a program a test starts, with XLA's host platform split
    into `devices` CPU devices."""
    return {**os.environ, 'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}'}


def run_main(arguments, tmp_path):
    """python main.py ARGUMENTS under tfds.testing.mock_data, as a user runs it."""
    script = ('import runpy, sys, tensorflow_datasets as tfds\n'
              f'sys.argv = ["main.py"] + {arguments!r}\n'
              f'with tfds.testing.mock_data(num_examples={EXAMPLES}):\n'
              f'    runpy.run_path({os.path.join(REPOSITORY, "main.py")!r}, run_name="__main__")\n')
    return subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)


@contextlib.contextmanager
def only_one_worker(path):
    """Holds the lock file `path`: one pytest-xdist worker at a time makes what it guards."""
    with open(path, 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope='session')
def teacher(tmp_path_factory, pytestconfig):
    """A resnet8 teacher trained through main.py, its run directory, its log, and the
    compilation cache it filled (its own, not the user's): trained once per test run, by the
    first worker that asks, and read by all."""
    shared = run_directory(tmp_path_factory, pytestconfig)
    workdir, cache, log = shared / 'teacher', shared / 'teacher_xla', shared / 'teacher.log'
    with only_one_worker(shared / 'teacher.lock'):
        if not log.exists():
            workdir.mkdir(exist_ok=True)
            result = run_main(['--config', os.path.join(REPOSITORY, 'configs/cifar_teacher.py:resnet8'),
                               '--workdir', str(workdir), '--config.num_epochs=2', '--config.steps_per_epoch=2',
                               '--config.global_batch_size=8', '--config.eval_batch_size=8',
                               '--config.log_every_steps=1', f'--config.compilation_cache={cache}'], workdir)
            assert result.returncode == 0, result.stderr[-3000:]
            log.write_text(result.stderr)
    return workdir, log.read_text(), cache


def shrink(config, **fields):
    """A run of 2 epochs of 2 steps of 8 images."""
    config.update({**dict(num_epochs=2, steps_per_epoch=2, global_batch_size=8, eval_batch_size=8,
                          log_every_steps=1), **fields})
    return config


# The objectives the tests distil with, as two comparison tables of the pair: a table compiles
# one train step for its rows, in ~0.7× the time of its rows' own (bench/step.py --table: 17.2 s
# against 24.8 s for eight of them here), and reads the teacher and the data once.
DISTILLED_TABLES = (('at', 'ce_teacher_classifier', 'crd', 'dkd', 'fitnet', 'ijckd', 'ijckd_distance', 'ijckd_joint'),
                    ('kd', 'ofd', 'pkt', 'rkd', 'simkd', 'srrl', 'vid', 'wsld'))


def distilled_table(teacher, methods, **fields):
    """The comparison table of `methods` distilling the shared teacher into a wrn_16_1: shrink's run."""
    from configs import cifar_table

    config = shrink(cifar_table.get_config('resnet8-wrn_16_1'), methods=','.join(methods), **fields)
    config.teacher.checkpoint = str(teacher[0] / 'export')
    return config


@pytest.fixture(scope='session')
def distilled(teacher, tmp_path_factory, pytestconfig):
    """objective -> the workdir and summary of the shared teacher distilled into a wrn_16_1 with
    that objective (shrink's run, on the mocked data): a row of the DISTILLED_TABLES table that
    holds it, each trained once per test run. A table's run is the run of its method alone."""
    shared = run_directory(tmp_path_factory, pytestconfig)

    def run(objective):
        [methods] = [methods for methods in DISTILLED_TABLES if objective in methods]
        table = shared / f'distilled_{DISTILLED_TABLES.index(methods)}'
        with only_one_worker(table.with_suffix('.lock')):
            if not all((table / method / 'seed_0' / 'summary.json').exists() for method in methods):
                from ijckd_jax.training.loop import train_and_evaluate

                with tfds.testing.mock_data(num_examples=EXAMPLES):
                    train_and_evaluate(distilled_table(teacher, methods), str(table))
        workdir = table / objective / 'seed_0'
        return workdir, json.loads((workdir / 'summary.json').read_text())
    return run
