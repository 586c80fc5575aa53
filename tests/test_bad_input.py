"""Bad input as a new user gives it: one line `error: ...` before any work, no traceback,
nothing written; a workdir belongs to one run; data is what it says; divergence stops a run."""
import importlib
import json
import os
import re
import signal
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from configs import cifar, cifar_table, cifar_teacher, demo
from conftest import EXAMPLES, REPOSITORY, cpu_devices_environment, run_main
from ijckd_jax import files
from ijckd_jax.config import validate_config
from ijckd_jax.data import tfds_source
from ijckd_jax.data.folders import read_image
from ijckd_jax.data.pipeline import Pipeline
from ijckd_jax.demo import run_demo
from ijckd_jax.errors import ConfigError, DataUnavailable, Diverged, WorkdirError
from ijckd_jax.frozen_model import FrozenModel, load_frozen_model, save_frozen_model
from ijckd_jax.models import abstract_variables
from ijckd_jax.training.loop import train_and_evaluate
from ijckd_jax.training.progress import Progress
from ijckd_jax.training.runs import Run
from test_sources import folder_config, write_folder

TEACHER_CONFIG = os.path.join(REPOSITORY, 'configs', 'cifar_teacher.py:resnet8')


def main(arguments, cwd, devices=1):
    """python main.py ARGUMENTS on `devices` CPU devices, no data mocked."""
    environment = {**cpu_devices_environment(devices), 'JAX_PLATFORMS': 'cpu'}
    return subprocess.run([sys.executable, os.path.join(REPOSITORY, 'main.py'), *arguments],
                          capture_output=True, text=True, cwd=cwd, env=environment, timeout=300)


def assert_one_error_line(result, expected):
    """Exit 1 with exactly `expected` on stderr: one line, no traceback."""
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.strip().splitlines() == [expected], result.stderr[-3000:]


@pytest.mark.parametrize('setting, expected', [
    ('--config.num_epochs=abc', "error: flag --config.num_epochs=abc: invalid literal for int() with base 10: 'abc'"),
    ('--config.num_epochs=0', 'error: config.num_epochs=0 must be an integer ≥ 1.'),
    ('--config.optimizer.learning_rate=-0.1',
     'error: config.optimizer.learning_rate=-0.1 must be a finite number > 0.'),
    ('--config.data.std=(0.0,0.0,0.0)', 'error: config.data.std=(0.0, 0.0, 0.0) must be three finite numbers > 0, '
                                        'one per RGB channel.'),
    ('--config.data.image_size=0', 'error: config.data.image_size=0 must be an integer ≥ 8.'),
    ('--config.student.model=resnet9', "error: config.student.model: Unknown model 'resnet9'. Did you mean "
                                       "'resnet8'? Valid models: "),
    ('--config.loss.name=kd2', "error: config.loss.name: Unknown objective 'kd2'. Did you mean 'kd'? Valid "
                               'objectives: at, ce, ce_teacher_classifier, crd, dkd, fitnet, ijckd, ijckd_distance, '
                               'ijckd_joint, kd, '),
    ('--config.data.dataset=cifar10O', "error: config.data.dataset='cifar10O' is neither 'digits', an image "
                                       "folder nor a tfds data set. Did you mean 'cifar10'?"),
    ('--config.global_batch_size=6', 'error: config.global_batch_size=6 must be a multiple of the 4 devices the '
                                     'batch is sharded over.'),
])
def test_a_bad_value_is_one_line_before_any_work(setting, expected, tmp_path):
    result = main(['--config', TEACHER_CONFIG, '--workdir', str(tmp_path / 'run'), setting], tmp_path, devices=4)
    assert result.returncode == 1, result.stderr[-3000:]
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(expected)
    assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('config_argument, setting, expected', [
    ('configs/nope.py', '--config.seed=0', "error: --config {repository}/configs/nope.py: no such file. This "
                                           "project's config files are configs/{{cifar.py,cifar_ijckd.py,"),
    # A former one-method file: its method is a row of configs/cifar.py (or imagenet.py).
    ('configs/cifar_kd.py:resnet56-resnet20', '--config.seed=0',
     'error: --config {repository}/configs/cifar_kd.py: no such file. Each method is a row of one file now: '
     '--config {repository}/configs/cifar.py:kd,resnet56-resnet20.'),
    ('configs/cifar_ijkd.py', '--config.seed=0', 'error: --config {repository}/configs/cifar_ijkd.py: no such '
                                                 'file. Did you mean {repository}/configs/cifar_ijckd.py?'),
    ('{tmp_path}/broken.py', '--config.seed=0', "error: --config {tmp_path}/broken.py does not import: "
                                                "ModuleNotFoundError: No module named 'no_such_module' "
                                                '({tmp_path}/broken.py, line 2).'),
    ('configs/cifar_ijckd.py:resnet32x4', '--config.seed=0', "error: --config {repository}/configs/cifar_ijckd.py:"
                                                             "resnet32x4: A variant starts with 'teacher-student'"),
    ('configs/demo.py:fast', '--config.seed=0', "error: --config {repository}/configs/demo.py:fast: the demo has "
                                                "no variants, got 'fast'; change a field with --config.FIELD=VALUE"),
    ('configs/cifar_teacher.py:resnet8x5', '--config.seed=0', "error: --config {repository}/configs/cifar_teacher.py:"
                                                              "resnet8x5: Unknown model 'resnet8x5'. Did you mean "
                                                              "'resnet8x4'?"),
    ('configs/cifar_ijckd.py:resnet32x4-resnet8x4,alpah_ce=1', '--config.seed=0',
     "error: --config {repository}/configs/cifar_ijckd.py:resnet32x4-resnet8x4,alpah_ce=1: Objective 'ijckd' has "
     "no setting ['alpah_ce']"),
    ('configs/cifar_ijckd.py', '--config.data.mean=(1,2', 'error: flag --config.data.mean=(1,2: Error while '
                                                          'parsing string: (1,2 as tuple.'),
    ('configs/cifar_ijckd.py', '--config.nope=1', "error: --config.nope: config has no field 'nope'; its fields: "
                                                  'checkpoints_to_keep, compilation_cache, connector,'),
])
def test_everything_the_config_flag_can_get_wrong_is_one_line(config_argument, setting, expected, tmp_path):
    """A config file missing or not importing, a variant, model or setting it does not know,
    an override that does not parse or names no field: the process prints one line, nothing
    written."""
    (tmp_path / 'broken.py').write_text('"""A config file with a bad import."""\nimport no_such_module\n')
    names = dict(repository=REPOSITORY, tmp_path=tmp_path)
    argument = os.path.join(REPOSITORY, config_argument) if config_argument.startswith('configs') else \
        config_argument.format(**names)
    result = main(['--config', argument, '--workdir', str(tmp_path / 'run'), setting], tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(expected.format(**names))
    assert not (tmp_path / 'run').exists()


@pytest.mark.quick
@pytest.mark.parametrize('seeds, on_device, expected', [
    ((0, 0), True, r"config.seeds=\(0, 0\) repeats a seed; each seed is one run."),
    ((0, -1), True, r"config.seeds=\(0, -1\) must be integers ≥ 0, e.g. --config.seeds=0,1,2."),
    ((0, 1), False, r"config.seeds=\(0, 1\) trains the seeds together from a training split held on the "
                    r"devices; set --config.data.on_device=True"),
])
def test_seeds_trained_together_are_checked_before_any_work(seeds, on_device, expected):
    config = cifar_teacher.get_config('resnet8')
    config.seeds, config.data.on_device = seeds, on_device
    with pytest.raises(ConfigError, match=expected):
        validate_config(config, 1)


@pytest.mark.quick
@pytest.mark.parametrize('variant, fields, expected', [
    ('fitnet,resnet8x4-resnet8,hint_layer=7', {},
     r'config.loss: FitNet hint_layer=7: the student exposes 4 intermediate maps \(hint_layer 0 to 3\).'),
    ('vid,ResNet50-resnet8', {}, 'config.loss: VID pairs the intermediate maps of student and '
                                             'teacher, but the student exposes 4 and the teacher 5'),
    ('crd,resnet8x4-resnet8', {'on_device': False},
     "config.loss.name='crd' keeps a memory bank indexed by each example's position in the training split"),
    ('dkd,resnet8x4-resnet8', {'loss.beta': -1.0},
     r"config.loss: Setting beta=-1.0 of objective 'dkd' must be a finite number ≥ 0."),
    ('pkt,resnet8x4-resnet8', {'loss.temperature': 0.0}, 'config.loss: The KD temperature must be > 0'),
    ('crd,resnet8x4-resnet8', {'loss.negatives': 0},
     "config.loss: CRD's negatives must be a whole number ≥ 1, got 0."),
])
def test_a_methods_setting_or_maps_it_cannot_use_are_refused_before_any_work(variant, fields, expected):
    """A setting of the wrong sign or kind, FitNet's hint layer or VID's stages that the pair's
    models do not have, CRD without the split on the devices: one line (main.py prints the
    ConfigError), from the config alone."""
    config = cifar.get_config(variant)
    for field, value in fields.items():
        if field == 'on_device':
            config.data.on_device = value
        else:
            config.loss[field.split('.')[1]] = value
    with pytest.raises(ConfigError, match=expected):
        validate_config(config, 1)


def test_crd_resumed_on_a_split_of_another_size_is_refused_and_writes_nothing(distilled, teacher):
    """CRD's memory bank has a row per training example: its run resumes only on a split of the
    size it started with; refused before any step, nothing written."""
    from configs.common import cifar_distillation_config
    from conftest import shrink

    workdir, _ = distilled('crd')
    config = shrink(cifar_distillation_config('crd', 'resnet8-wrn_16_1'), num_epochs=3)
    config.teacher.checkpoint = str(teacher[0] / 'export')
    before = {path: os.path.getmtime(os.path.join(directory, path)) for directory, _, names in os.walk(workdir)
              for path in names}
    with tfds.testing.mock_data(num_examples=EXAMPLES + 8):
        with pytest.raises(WorkdirError, match=f'memory bank has a row for each of its {EXAMPLES} training examples, '
                                               f'but the training split now has {EXAMPLES + 8}; resume it on the '
                                               'same data, or pass a new --workdir'):
            train_and_evaluate(config, str(workdir))
    assert {path: os.path.getmtime(os.path.join(directory, path)) for directory, _, names in os.walk(workdir)
            for path in names} == before


def test_missing_data_is_one_line_after_the_start_and_writes_nothing(tmp_path):
    result = main(['--config', TEACHER_CONFIG, '--workdir', str(tmp_path / 'run'),
                   f'--config.data.data_dir={tmp_path}', '--config.compilation_cache='], tmp_path)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        f'error: tfds found no prepared cifar100 in {tmp_path}. On a machine with internet run `tfds build')
    assert not (tmp_path / 'run').exists()


@pytest.mark.quick
def test_a_workdir_that_cannot_be_a_directory_is_refused_before_any_work(tmp_path):
    (tmp_path / 'notes.txt').write_text('a file, not a folder')
    result = main(['--config', TEACHER_CONFIG, '--workdir', str(tmp_path / 'notes.txt' / 'run')], tmp_path)
    assert_one_error_line(result, f'error: --workdir {tmp_path}/notes.txt/run cannot be created: '
                                  f'{tmp_path}/notes.txt is a file; pass a directory.')


def test_a_teacher_of_another_model_or_damaged_is_one_line_and_writes_nothing(teacher, tmp_path):
    export = teacher[0] / 'export'
    result = main(['--config', os.path.join(REPOSITORY, 'configs', 'cifar.py:kd,resnet14-resnet8'),
                   '--workdir', str(tmp_path / 'run'), f'--config.teacher.checkpoint={export}'], tmp_path)
    assert_one_error_line(result, f"error: config.teacher.checkpoint='{export}' holds resnet8 with 100 classes, "
                                  'but the config asks for resnet14 with 100 classes; pass '
                                  '--config.teacher.model=resnet8, or another teacher.')
    damaged = tmp_path / 'damaged'
    save_frozen_model(damaged, load_frozen_model(export))
    os.remove(damaged / 'variables' / '_METADATA')
    result = run_main(['--config', os.path.join(REPOSITORY, 'configs', 'cifar.py:kd,resnet8-resnet8'),
                       '--workdir', str(tmp_path / 'run'), f'--config.teacher.checkpoint={damaged}',
                       '--config.global_batch_size=8', '--config.compilation_cache='], tmp_path)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f'error: {damaged}/variables cannot be read (orbax finds no metadata); the saved model is '
        'damaged: convert or export it again.')
    assert not (tmp_path / 'run').exists()


def damage_data_files(directory):
    """Overwrites the array data of the orbax checkpoints below `directory` (OCDBT's d/ files),
    their metadata and manifests intact: a restore starts its reads, and some of them fail."""
    damaged = [path for path in directory.rglob('*') if path.is_file() and path.parent.name == 'd']
    for path in damaged:
        path.write_bytes(b'damaged')
    assert damaged


def error_after_log(result):
    """The error line that ends a failed program's stderr, where every line before it is one of
    the run's log lines (absl's 'I1202 ...', 'W1202 ...'): no traceback anywhere."""
    *log, line = result.stderr.strip().splitlines()
    assert result.returncode == 1 and all(re.match(r'[IWE]\d{4} ', entry) for entry in log), result.stderr[-3000:]
    return line


def test_a_damaged_checkpoint_or_saved_model_is_one_line_with_nothing_after_it(tmp_path):
    """Reads that fail part way: the error line is the whole of the process's stderr, with no
    traceback from the reads still in flight (ijckd_jax/restoring.py), in every program that
    restores one: the export, a resumed run, a run with a damaged teacher."""
    root = write_folder(tmp_path / 'images')
    config = folder_config(root)
    config.update(dict(num_epochs=1, log_every_steps=1))
    config.student.model = 'resnet8'
    run = tmp_path / 'run'
    train_and_evaluate(config, str(run))  # 12 images, batches of 4: checkpoint 3
    damage_data_files(run)
    folder = ['--workdir', str(run), f'--config.data.dataset={root}', '--config.data.num_classes=3',
              '--config.data.image_size=8', '--config.global_batch_size=4', '--config.eval_batch_size=4',
              '--config.compilation_cache=']

    result = subprocess.run([sys.executable, os.path.join(REPOSITORY, 'tools', 'export_student.py'), str(run),
                             '--out', str(tmp_path / 'shipped')], capture_output=True, text=True, timeout=300,
                            env={**os.environ, 'JAX_PLATFORMS': 'cpu'})
    assert error_after_log(result).startswith(f'error: The checkpoint {run}/checkpoints/3 cannot be read (')
    result = main(['--config', TEACHER_CONFIG, *folder, '--config.num_epochs=2'], tmp_path, devices=4)
    line = error_after_log(result)
    assert line.startswith(f'error: The checkpoint {run}/checkpoints/3 cannot be read (')
    assert line.endswith('; remove it to resume from the one before, or train in a new --workdir.')
    folder[1] = str(tmp_path / 'student')
    result = main(['--config', os.path.join(REPOSITORY, 'configs', 'cifar.py:kd,resnet8-resnet8'), *folder,
                   f'--config.teacher.checkpoint={run}/export'], tmp_path, devices=4)
    line = error_after_log(result)
    assert line.startswith(f'error: {run}/export/variables cannot be read (')
    assert line.endswith('); the saved model is damaged: convert or export it again.')
    assert not (tmp_path / 'shipped').exists() and not (tmp_path / 'student').exists()


def test_ctrl_c_stops_after_the_last_checkpoint_with_one_line(tmp_path):
    script = ('import runpy, sys, tensorflow_datasets as tfds\n'
              f'sys.argv = ["main.py", "--config", {TEACHER_CONFIG!r}, "--workdir", {str(tmp_path / "run")!r},'
              ' "--config.num_epochs=100", "--config.steps_per_epoch=2", "--config.global_batch_size=8",'
              ' "--config.eval_batch_size=8", "--config.compilation_cache="]\n'
              f'with tfds.testing.mock_data(num_examples={EXAMPLES}):\n'
              f'    runpy.run_path({os.path.join(REPOSITORY, "main.py")!r}, run_name="__main__")\n')
    process = subprocess.Popen([sys.executable, '-c', script], stderr=subprocess.PIPE, text=True)
    lines = []
    for line in process.stderr:
        lines.append(line)
        if 'Epoch 2/100' in line:
            process.send_signal(signal.SIGINT)
            break
    lines += process.stderr.readlines()
    assert process.wait(timeout=120) == 130, ''.join(lines[-30:])
    assert lines[-1].strip() == ('interrupted: the checkpoints of the finished epochs are kept; run the '
                                 'same command to resume.')
    # What the first Ctrl-C does: the loop stops dispatching, and what was dispatched runs first.
    assert any(line.rstrip().endswith('Ctrl-C: stopping once the steps already sent to the devices have run; the '
                                      'run keeps its last finished epoch (press Ctrl-C again to stop at once).')
               for line in lines)
    assert not any('Traceback' in line for line in lines)
    saved = os.listdir(tmp_path / 'run' / 'checkpoints')
    assert all(name.isdigit() for name in saved) and '4' in saved  # every save finished
    assert not (tmp_path / 'run' / '.lock').exists()


def short_teacher(**fields):
    config = cifar_teacher.get_config('resnet8')
    config.update({**dict(num_epochs=2, steps_per_epoch=2, global_batch_size=8, eval_batch_size=8,
                          log_every_steps=2), **fields})
    return config


def snapshot(workdir):
    """Every file of the workdir with its content, to show that a refused run changed nothing."""
    found = {}
    for directory, _, names in os.walk(workdir):
        for name in names:
            path = os.path.join(directory, name)
            found[os.path.relpath(path, workdir)] = open(path, 'rb').read()
    return found


def test_a_workdir_resumes_only_its_own_run_and_more_epochs_re_export(tmp_path):
    workdir = str(tmp_path / 'run')
    with tfds.testing.mock_data(num_examples=EXAMPLES):
        train_and_evaluate(short_teacher(), workdir)
        before = snapshot(workdir)
        exported = load_frozen_model(os.path.join(workdir, 'export')).variables
        learning_rate = short_teacher()
        learning_rate.optimizer.learning_rate = 0.1
        for config, message in [
                (short_teacher(global_batch_size=4), 'global_batch_size 8 there, 4 now'),
                (short_teacher(seed=1), 'seed 0 there, 1 now'),
                (learning_rate, 'optimizer.learning_rate 0.05 there, 0.1 now'),
                (short_teacher(num_epochs=1), 'has trained 2 epochs but config.num_epochs is 1; pass '
                                              '--config.num_epochs=2 or more')]:
            with pytest.raises(WorkdirError, match=message):
                train_and_evaluate(config, workdir)
        assert snapshot(workdir) == before
        summary = train_and_evaluate(short_teacher(num_epochs=3), workdir)
    assert summary['epochs'] == 3
    assert json.loads(open(os.path.join(workdir, 'run.json')).read())['steps_per_epoch'] == 2
    longer = load_frozen_model(os.path.join(workdir, 'export')).variables
    assert not np.array_equal(longer['params']['fc']['kernel'], exported['params']['fc']['kernel'])


def dead_pid():
    process = subprocess.Popen([sys.executable, '-c', 'pass'])
    process.wait()
    return process.pid


def test_a_live_process_holds_its_workdir_and_a_killed_one_leaves_nothing_behind(tmp_path):
    workdir = tmp_path / 'run'
    workdir.mkdir()
    sleeper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    (workdir / '.lock').write_text(f'{files.HOST} {sleeper.pid}\n')
    with pytest.raises(WorkdirError, match=f'Another process \\(pid {sleeper.pid} on {files.HOST}\\) is '
                                           f'training in {workdir}'):
        train_and_evaluate(short_teacher(num_epochs=1), str(workdir))
    sleeper.kill()
    sleeper.wait()
    staging = workdir / f'.export.staging-{files.HOST}-{dead_pid()}'
    (staging / 'variables').mkdir(parents=True)
    with tfds.testing.mock_data(num_examples=EXAMPLES):
        train_and_evaluate(short_teacher(num_epochs=1), str(workdir))  # takes the dead lock over
    assert sorted(name for name in os.listdir(workdir) if name.startswith('.')) == []
    assert (workdir / 'export' / 'model.json').is_file()


@pytest.mark.quick
def test_a_killed_conversion_leaves_no_staging_next_to_a_later_one(tmp_path):
    variables = jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), abstract_variables('resnet8'))
    (tmp_path / f'.teacher.staging-{files.HOST}-{dead_pid()}').mkdir()
    sleeper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    running = tmp_path / f'.teacher.staging-{files.HOST}-{sleeper.pid}'  # another conversion's, alive
    running.mkdir()
    save_frozen_model(tmp_path / 'teacher', FrozenModel('resnet8', 100, variables))
    sleeper.kill()
    sleeper.wait()
    assert sorted(os.listdir(tmp_path)) == [running.name, 'teacher']


@pytest.mark.quick
def test_train_and_test_folders_must_name_the_same_classes(tmp_path):
    root = write_folder(tmp_path / 'images', extras=False)
    os.rename(root / 'test' / 'emu', root / 'test' / 'fox')
    with pytest.raises(DataUnavailable, match='have different class folders \\(only in train/: emu; only in '
                                              'test/: fox\\); labels follow the sorted names'):
        validate_config(folder_config(root), 4)


@pytest.mark.quick
def test_an_image_folder_without_its_class_count_is_one_line_before_any_work(tmp_path):
    """num_classes left at the config's 100 on a folder of 3 classes: a ConfigError (main.py's
    one line), not folders.py's ValueError under a traceback."""
    config = folder_config(write_folder(tmp_path / 'images', extras=False), num_classes=100)
    with pytest.raises(ConfigError, match=re.escape(f'{tmp_path}/images has 3 classes (cat, dog, emu) but '
                                                    'config.data.num_classes is 100; pass '
                                                    '--config.data.num_classes=3.')):
        train_and_evaluate(config, str(tmp_path / 'run'))
    assert not (tmp_path / 'run').exists()


@pytest.mark.quick
@pytest.mark.parametrize('num_classes', [100, 3])
def test_a_teacher_of_other_classes_than_the_folders_cannot_serve_it_whatever_num_classes_says(num_classes,
                                                                                              tmp_path):
    """A CIFAR-100 teacher on a folder of 3 classes: one line saying so, the same whether
    num_classes is left at the teacher's 100 or set to the folder's 3, so that neither hint
    sends the user to the other."""
    root = write_folder(tmp_path / 'images', extras=False)
    variables = jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), abstract_variables('resnet8'))
    save_frozen_model(tmp_path / 'teacher', FrozenModel('resnet8', 100, variables))
    config = cifar.get_config('kd,resnet8-resnet8')
    config.data.update(dict(dataset=str(root), num_classes=num_classes, image_size=8))
    config.teacher.checkpoint = str(tmp_path / 'teacher')
    with pytest.raises(ConfigError, match=re.escape(
            f"config.teacher.checkpoint='{tmp_path}/teacher' holds resnet8 trained on 100 classes, but the image "
            f'folder {root} has 3: this teacher cannot serve this data. Train a teacher on the folder '
            f'(configs/cifar_teacher.py:resnet8 with --config.data.dataset={root} --config.data.num_classes=3) '
            'and pass its export, or convert one with 3 classes.')):
        train_and_evaluate(config, str(tmp_path / 'run'))
    assert not (tmp_path / 'run').exists()


@pytest.mark.quick
@pytest.mark.parametrize('field, value, expected', [
    ('student', 'resnet8X4', "config.demo.student: Unknown model 'resnet8X4'. Did you mean 'resnet8x4'?"),
    ('methods', 'ce,kd2', "config.demo.methods: Unknown objective 'kd2'. Did you mean 'kd'?"),
])
def test_the_demos_students_are_checked_before_their_teacher_trains(field, value, expected, tmp_path):
    """The mistake is named by the demo's own field, and nothing is trained or written (one
    epoch of two steps, so that a check made after the teacher fails fast)."""
    config = demo.get_config()
    config.update(dict(num_epochs=1, steps_per_epoch=2))
    config.demo[field] = value
    with pytest.raises(ConfigError, match=re.escape(expected)):
        run_demo(config, str(tmp_path / 'demo'))
    assert not (tmp_path / 'demo').exists()


@pytest.mark.quick
def test_a_tfds_data_set_of_other_classes_than_num_classes_is_one_line_before_any_work(tmp_path):
    """cifar10 with the CIFAR-100 configs' num_classes=100: the classifier would have 100
    outputs for 10 labels. The count comes from tfds's definition of the set: nothing is read."""
    config = short_teacher()
    config.data.update(dict(dataset='cifar10', data_dir=str(tmp_path / 'nothing_here')))
    with pytest.raises(ConfigError, match=re.escape("config.data.dataset='cifar10' has 10 classes, but "
                                                    'config.data.num_classes is 100; pass '
                                                    '--config.data.num_classes=10, or name the data set you mean '
                                                    'with --config.data.dataset')):
        train_and_evaluate(config, str(tmp_path / 'run'))
    assert os.listdir(tmp_path) == []
    config.data.num_classes = 10
    validate_config(config, 4)


@pytest.mark.quick
def test_a_download_from_an_unreachable_host_is_refused_before_tfds_starts(tmp_path, monkeypatch):
    """download=True offline: one connection attempt, before tfds (which retries for minutes
    and leaves partial files), and one line that does not suggest download=True again."""
    attempts = []

    def unreachable(address, timeout):
        attempts.append(address)
        raise OSError('[Errno -2] Name or service not known')

    def started(*arguments, **keywords):
        raise AssertionError('tfds started')

    monkeypatch.setattr(socket, 'create_connection', unreachable)
    monkeypatch.setattr(tfds, 'load', started)
    monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', started)
    for name in ('https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY'):
        monkeypatch.delenv(name, raising=False)
    config = short_teacher()
    config.data.update(dict(download=True, data_dir=str(tmp_path / 'tensorflow_datasets')))
    with pytest.raises(DataUnavailable) as error:
        train_and_evaluate(config, str(tmp_path / 'run'))
    assert str(error.value) == (
        'config.data.download=True, but www.cs.toronto.edu, where tfds downloads cifar100 from, cannot be reached '
        'from this machine ([Errno -2] Name or service not known). On a machine with internet run `tfds build '
        f'cifar100 --data_dir {tmp_path}/tensorflow_datasets`, copy the directory here, and pass '
        f'--config.data.data_dir={tmp_path}/tensorflow_datasets.')
    assert attempts == [('www.cs.toronto.edu', 443)]  # one attempt, no retry
    assert os.listdir(tmp_path) == []


@pytest.mark.quick
def test_a_download_through_a_proxy_is_checked_at_the_proxy(monkeypatch):
    monkeypatch.setenv('https_proxy', 'http://proxy.example:3128')
    for name in ('no_proxy', 'NO_PROXY'):
        monkeypatch.delenv(name, raising=False)
    assert tfds_source.connection_address('https://www.cs.toronto.edu/x.tar.gz') == ('proxy.example', 3128)


@pytest.mark.quick
def test_sixteen_bit_and_palette_images_keep_their_levels(tmp_path):
    levels = np.array([[0, 257 * 128], [257 * 200, 65535]], np.uint16)
    Image.fromarray(levels).save(tmp_path / 'grey16.png')
    assert Image.open(tmp_path / 'grey16.png').mode.startswith('I')
    np.testing.assert_array_equal(read_image(str(tmp_path / 'grey16.png'), 2)[..., 0], [[0, 128], [200, 255]])
    palette = Image.new('P', (2, 2))
    palette.putpalette([255, 0, 0, 0, 128, 255] + [0] * 762)
    palette.putdata([0, 1, 1, 0])
    palette.save(tmp_path / 'palette.png')
    np.testing.assert_array_equal(read_image(str(tmp_path / 'palette.png'), 2).reshape(4, 3),
                                  [[255, 0, 0], [0, 128, 255], [0, 128, 255], [255, 0, 0]])


def test_a_streamed_epoch_counts_what_it_can_read_and_is_never_short(tmp_path):
    root = write_folder(tmp_path / 'images', size=80)  # 12 good images a split; a broken header
    body = (root / 'train' / 'emu' / '1.png').read_bytes()
    for index in range(4):  # headers that read, data cut short: the stream skips them when decoding
        (root / 'train' / 'emu' / f'cut{index}.png').write_bytes(body[:len(body) // 2])
    pipeline = Pipeline(folder_config(root, image_size=72), 0, 1)
    assert not pipeline.in_memory and len(pipeline.files['train'][0]) == 16  # broken.jpg left out
    assert pipeline.steps_per_epoch == 4
    for epoch in (0, 1):  # 12 images decode, but every epoch has its 4 batches
        assert [images.shape[0] for images, _ in pipeline.train_epoch(epoch)] == [4, 4, 4, 4]


@pytest.mark.quick
def test_a_loss_that_explodes_stops_the_run_before_its_epoch_is_kept():
    from types import SimpleNamespace

    class Silent:
        def write_scalars(self, step, scalars):
            pass

    def progress(epochs, every):
        config = short_teacher(num_epochs=epochs, log_every_steps=every)
        return Progress([Run(config, '', 'ce', writer=Silent())], config, 10, 0, SimpleNamespace(check=lambda: None))

    watch = progress(1, 100)
    for loss in (2.0, 1500.0, 1999.0):  # within 1000× the first
        watch.record({'ce': {'loss': loss}})
    watch.flush()
    watch.record({'ce': {'loss': 2500.0}})
    with pytest.raises(Diverged, match=r'The loss is 2500 at step 4 \(over 2e\+03, 1000× the first\): the '
                                       'run diverged and stops. No epoch finished, so nothing of the run is kept;'):
        watch.flush()
    watch = progress(2, 100)
    for loss in (2.0,) * 12 + (2500.0,):  # step 13: the first epoch of 10 steps has ended
        watch.record({'ce': {'loss': loss}})
    with pytest.raises(Diverged, match='at step 13 .* The checkpoint of the last finished epoch is kept;'):
        watch.flush()
    watch = progress(1, 1)
    watch.record({'ce': {'loss': 2.0}})
    with pytest.raises(Diverged, match=r'The loss is nan at step 2 \(not finite\)'):
        watch.record({'ce': {'loss': float('nan')}})


DIGITS_FIX = ("add data=digits to a CIFAR config's variant (e.g. --config configs/cifar.py:kd,resnet20-resnet8,"
              "data=digits), which sets the digits' classes, image size and normalisation together")


@pytest.mark.quick
@pytest.mark.parametrize('fields, expected', [
    ({}, f"config.data.num_classes=100 is not the digits' 10 classes: {DIGITS_FIX}, or pass "
         '--config.data.num_classes=10.'),
    ({'num_classes': 5}, "config.data.num_classes=5 is not the digits' 10 classes"),
    ({'num_classes': 10}, "config.data.mean=(0.5071, 0.4867, 0.4408) and std=(0.2675, 0.2565, 0.2761) are not the "
                          f"digits' normalisation (mean 0.3049, std 0.3757 in every channel): {DIGITS_FIX}."),
    ({'num_classes': 10, 'mean': (0.3049,) * 3, 'std': (0.3757,) * 3, 'image_size': 12},
     f'config.data.image_size=12 must be a multiple of 8 for the 8×8 digits: {DIGITS_FIX}.'),
    ({'eval_split': 'validation'}, "config.data.eval_split='validation' is not a split of the digits, which have "
                                   "'train' and 'test'; pass --config.data.eval_split=test."),
    ({'train_split': 'trian'}, "config.data.train_split='trian' is not a split of the digits, which have 'train' "
                               "and 'test'; pass --config.data.train_split=train."),
])
def test_the_digits_check_their_classes_splits_size_and_normalisation_before_any_work(fields, expected):
    """A CIFAR config with data.dataset=digits alone trained a 100-way classifier at 32 pixels
    under CIFAR-100's normalisation without a word, and 5 classes was a NaN at step 1."""
    config = cifar_teacher.get_config('resnet8')
    config.data.update({'dataset': 'digits', **fields})
    with pytest.raises(ConfigError, match=re.escape(expected)):
        validate_config(config, 4)
    validate_config(cifar_teacher.get_config('resnet8,data=digits'), 4)  # the fix the lines give


def test_a_digits_split_typo_is_one_line_from_main(tmp_path):
    result = main(['--config', f'{TEACHER_CONFIG},data=digits', '--workdir', str(tmp_path / 'run'),
                   '--config.data.eval_split=validation'], tmp_path)
    assert_one_error_line(result, "error: config.data.eval_split='validation' is not a split of the digits, which "
                                  "have 'train' and 'test'; pass --config.data.eval_split=test.")
    assert not (tmp_path / 'run').exists()


def test_the_demos_methods_are_a_comma_separated_list_as_a_tables(tmp_path):
    result = main(['--config', os.path.join(REPOSITORY, 'configs', 'demo.py'), '--workdir', str(tmp_path / 'demo'),
                   '--config.demo.methods=kd,dkd2'], tmp_path)
    objectives = ', '.join(sorted(importlib.import_module('ijckd_jax.objectives').OBJECTIVES))
    assert_one_error_line(result, "error: config.demo.methods: Unknown objective 'dkd2'. Did you mean 'dkd'? Valid "
                                  f'objectives: {objectives}.')
    assert not (tmp_path / 'demo').exists()


def saved_teacher(directory, model='resnet20', classes=10, data=None):
    """A saved teacher of zero weights, with the record of the data it was trained on, as a
    training run's export writes it (None: a converted PyTorch checkpoint's, without one)."""
    variables = jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), abstract_variables(model, classes))
    save_frozen_model(directory, FrozenModel(model, classes, variables), record=data and {'data': data})
    return str(directory)


DIGITS_RECORD = dict(dataset='digits', image_size=16, mean=[0.3049] * 3, std=[0.3757] * 3)


@pytest.mark.quick
def test_a_teachers_record_leads_a_student_to_the_teachers_data(tmp_path):
    """A student of a digits teacher, run without the digits flags: the advice names the data
    set, and following it validates (the old advice, num_classes=10, led to 'cifar100 has 100
    classes: pass num_classes=100', and round again)."""
    checkpoint = saved_teacher(tmp_path / 'teacher', data=DIGITS_RECORD)
    config = cifar.get_config('kd,resnet20-resnet8')
    config.teacher.checkpoint = checkpoint
    with pytest.raises(ConfigError, match=re.escape(
            f"config.teacher.checkpoint='{checkpoint}' holds resnet20 trained on digits (10 classes, 16 pixels), but "
            "the config trains on cifar100: train the student on the teacher's data (add data=digits to a CIFAR "
            "config's variant (e.g. --config configs/cifar.py:kd,resnet20-resnet8,data=digits), which sets its "
            'classes, image size and normalisation), or pass a teacher of cifar100.')):
        validate_config(config, 4)
    config = cifar.get_config('kd,resnet20-resnet8,data=digits')
    config.teacher.checkpoint = checkpoint
    validate_config(config, 4)
    config.data.image_size = 32
    with pytest.raises(ConfigError, match=re.escape(
            f"config.teacher.checkpoint='{checkpoint}' holds resnet20 trained at 16 pixels, but "
            'config.data.image_size is 32: the teacher would see images of another size; pass '
            '--config.data.image_size=16.')):
        validate_config(config, 4)


@pytest.mark.quick
def test_a_teacher_without_a_record_names_the_data_set_with_its_class_count(tmp_path):
    checkpoint = saved_teacher(tmp_path / 'teacher')
    config = cifar.get_config('kd,resnet20-resnet8')
    config.teacher.checkpoint = checkpoint
    with pytest.raises(ConfigError, match=re.escape(
            f"config.teacher.checkpoint='{checkpoint}' holds resnet20 with 10 classes, but the config asks for "
            'resnet20 with 100 classes; pass --config.teacher.model=resnet20 and a data set of 10 classes '
            "(--config.data.dataset=... --config.data.num_classes=10; a CIFAR config's variant sets both with "
            'data=cifar10, cifar100 or digits), or another teacher.')):
        validate_config(config, 4)


@pytest.mark.quick
def test_a_teachers_run_directory_names_its_export(tmp_path):
    saved_teacher(tmp_path / 'teacher_digits' / 'export', data=DIGITS_RECORD)
    config = cifar.get_config('kd,resnet20-resnet8,data=digits')
    config.teacher.checkpoint = str(tmp_path / 'teacher_digits')
    with pytest.raises(ConfigError, match=re.escape(
            f"config.teacher.checkpoint='{tmp_path}/teacher_digits' is a training run's directory; the model it "
            f'trained is its export: pass --config.teacher.checkpoint={tmp_path}/teacher_digits/export.')):
        validate_config(config, 4)


@pytest.mark.quick
def test_a_tfds_data_set_of_another_image_size_is_one_line_before_any_work(tmp_path):
    config = short_teacher()
    config.data.update(dict(image_size=16, data_dir=str(tmp_path / 'nothing_here')))
    with pytest.raises(ConfigError, match=re.escape("config.data.dataset='cifar100' has 32×32 images, but "
                                                    'config.data.image_size is 16; pass '
                                                    '--config.data.image_size=32.')):
        validate_config(config, 4)


@pytest.mark.quick
@pytest.mark.parametrize('existed', [False, True])
def test_a_run_that_stops_before_its_first_checkpoint_leaves_no_new_workdir(existed, tmp_path, monkeypatch):
    """A loss that is NaN at step 1 (or Ctrl-C, or any failure) before the first epoch is kept
    leaves nothing to resume: the workdir it created is removed; one that was there stays."""
    from ijckd_jax.training import loop

    def diverge(*arguments):
        raise Diverged('The loss is nan at step 1 (not finite): the run diverged and stops.')
    monkeypatch.setattr(loop, 'train_epochs', diverge)
    workdir = tmp_path / 'runs' / 'ce'
    if existed:
        workdir.mkdir(parents=True)
    config = cifar_teacher.get_config('resnet8,data=digits')
    config.update(dict(global_batch_size=8, eval_batch_size=8, seeds=(0, 1)))
    with pytest.raises(Diverged):
        train_and_evaluate(config, str(workdir))
    assert os.listdir(tmp_path / 'runs') == (['ce'] if existed else [])
    assert not existed or os.listdir(workdir) == []


@pytest.mark.quick
def test_crd_on_a_split_smaller_than_its_negatives_says_what_it_costs(tmp_path, caplog):
    """CRD's 16,384 negatives on the 1,437 digits ran about 10× KD's step without a word."""
    from types import SimpleNamespace

    from ijckd_jax.training.loop import check_memory_banks

    crd = SimpleNamespace(loss=cifar.get_config('kd').loss.__class__(dict(name='crd', negatives=16384)))
    runs = [Run(crd, str(tmp_path / 'crd' / f'seed_{seed}'), 'crd', seed) for seed in (0, 1)]
    with caplog.at_level('WARNING'):
        check_memory_banks(runs, 1437, cifar_table.get_config('resnet8-resnet8'))
    assert [record.getMessage() for record in caplog.records] == [
        'CRD scores 16384 negatives per example each step (its CIFAR-100 setting), more than the 1437 examples of '
        'this split: its step costs several times that of KD here; --config.method_settings.crd.loss.negatives=N '
        'sets fewer.']
