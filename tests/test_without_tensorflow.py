"""Where TensorFlow is not installed: the demo trains and writes the TensorBoard event files
that a run with TensorFlow writes, the benchmark and the converter run, and a data set that
needs tf.data stops before any work with one line saying what to install.

Each case runs in a subprocess where Python's path finder cannot find TensorFlow, as on a
machine without it.
"""
import glob
import os
import subprocess
import sys

import pytest
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from conftest import CPU_DEVICES, REPOSITORY, cpu_devices_environment
from test_convert import save_repdistiller, trained_looking_model

WITHOUT_TENSORFLOW = """
import importlib.machinery, runpy, sys
find_installed = importlib.machinery.PathFinder.find_spec

def find_spec(name, path=None, target=None):  # as if TensorFlow were not installed
    if name == 'tensorflow' or name.startswith('tensorflow.'):
        return None
    return find_installed(name, path, target)

importlib.machinery.PathFinder.find_spec = find_spec
script, run_name, *arguments = sys.argv[1:]
sys.argv = [script, *arguments]
try:
    runpy.run_path(script, run_name=run_name)
finally:
    print('tensorflow imported:', 'tensorflow' in sys.modules)
"""


def run_without_tensorflow(script, arguments, cwd, run_name='__main__', devices=1):
    """python SCRIPT ARGUMENTS with TensorFlow hidden, on `devices` CPU devices; run_name other
    than '__main__' imports it."""
    return subprocess.run([sys.executable, '-c', WITHOUT_TENSORFLOW, os.path.join(REPOSITORY, script),
                           run_name, *arguments], capture_output=True, text=True, cwd=cwd,
                          env=cpu_devices_environment(devices), timeout=600)


def summaries(run_directory):
    """{tag: (plugin, steps)} of every summary in the run's event files."""
    found = {}
    for path in glob.glob(os.path.join(run_directory, 'events.out.tfevents.*')):
        for event in EventFileLoader(path).Load():
            for value in event.summary.value:
                plugin, steps = found.setdefault(value.tag, (value.metadata.plugin_data.plugin_name, []))
                steps.append(event.step)
    return found


def test_the_demo_trains_and_writes_the_event_files_a_tensorflow_run_writes(tmp_path, teacher):
    # test_demo.py's demo on as many devices: the programs of whichever runs second are read from
    # the test run's compilation cache.
    result = run_without_tensorflow('main.py', [
        '--config', os.path.join(REPOSITORY, 'configs', 'demo.py'), '--workdir', str(tmp_path / 'demo'),
        '--config.num_epochs=1', '--config.steps_per_epoch=2', '--config.log_every_steps=1',
        '--config.demo.teacher=resnet8', '--config.compilation_cache='], cwd=tmp_path, devices=len(CPU_DEVICES))
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'tensorflow imported: False' in result.stdout
    assert "written by tensorboard's own event writer" in result.stderr
    assert '| student resnet8 | ijckd |' in result.stdout

    # The demo's teacher and the suite's teacher (trained through main.py with TensorFlow, by
    # clu's writer) are both resnet8 trained with cross-entropy: the same summaries.
    without, with_tensorflow = summaries(tmp_path / 'demo' / 'teacher'), summaries(teacher[0])
    assert {tag: plugin for tag, (plugin, _) in without.items()} == \
        {tag: plugin for tag, (plugin, _) in with_tensorflow.items()}
    assert without['_hparams_/session_start_info'] == ('hparams', [0])
    assert without['loss'] == ('scalars', [1, 2]) and without['test_top1'] == ('scalars', [2])
    student = summaries(tmp_path / 'demo' / 'students' / 'ijckd' / 'seed_0')
    assert {'loss_logit_matching', 'teacher_top1', 'test_delta2'} <= set(student)


def test_the_benchmark_imports_and_the_converter_verifies(tmp_path):
    benchmark = run_without_tensorflow('bench/step.py', [], cwd=tmp_path, run_name='bench_step')
    assert benchmark.returncode == 0, benchmark.stderr[-3000:]
    assert 'tensorflow imported: False' in benchmark.stdout

    checkpoint = save_repdistiller(tmp_path / 'resnet8_vanilla', trained_looking_model())
    converted = run_without_tensorflow('tools/convert_torch_weights.py', [
        checkpoint, '--out', str(tmp_path / 'teacher'), '--verify'], cwd=tmp_path)
    assert converted.returncode == 0, converted.stderr[-3000:]
    assert 'largest absolute logit difference' in converted.stdout
    assert (tmp_path / 'teacher' / 'model.json').is_file()


@pytest.mark.quick
def test_a_tfds_data_set_stops_before_any_work_with_what_to_install(tmp_path):
    result = run_without_tensorflow('main.py', [
        '--config', os.path.join(REPOSITORY, 'configs', 'cifar_teacher.py:resnet8'),
        '--workdir', str(tmp_path / 'run'), '--config.compilation_cache='], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: config.data.dataset='cifar100' is read with tf.data, which needs TensorFlow: "
        "pip install tensorflow-cpu (or pip install -e '.[tensorflow]').")
    assert 'Traceback' not in result.stderr
    assert not (tmp_path / 'run').exists()
