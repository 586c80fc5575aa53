"""The training system end to end on mocked CIFAR-100, offline on four CPU devices."""
import glob
import json
import logging
import os
import re
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
import tensorflow_datasets as tfds
import torch
from flax import traverse_util
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.util import tensor_util

from configs import cifar_ijckd, cifar_teacher
from conftest import CPU_DEVICES, EXAMPLES, REPOSITORY, shrink
from ijckd_jax.data import device as device_data
from ijckd_jax.data.pipeline import Pipeline
from ijckd_jax.deploy.artifact import export_run
from ijckd_jax.errors import ConfigError
from ijckd_jax.frozen_model import load_frozen_model
from ijckd_jax.objectives import OBJECTIVES
from ijckd_jax.training import checkpoints
from ijckd_jax.training import steps as train_steps
from ijckd_jax.training.experiment import create_experiment, load_teacher
from ijckd_jax.training.steps import SplitBatch
from ijckd_jax.training.loop import dispatches, evaluate, train_and_evaluate
from ijckd_jax.training.mesh import Mesh
from ijckd_jax.training.metrics import DETAILS, show_details
from ijckd_jax.training.state import TrainState, create_optimizer
from ijckd_jax.training.workdir import History, summarize
from multiprocess_worker import DEVICES_PER_PROCESS, PROCESSES, STEPS, distributed_config, run_steps
from rounding import DRAWS, beyond_rounding, one_ulp_away


def scalars(workdir):
    """{tag: {step: value}} of the scalars in the run's TensorBoard event files."""
    found = {}
    for path in glob.glob(os.path.join(workdir, 'events.out.tfevents.*')):
        for event in EventFileLoader(path).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == 'scalars':
                    found.setdefault(value.tag, {})[event.step] = float(tensor_util.make_ndarray(value.tensor))
    return found


def test_teacher_training_through_main_writes_everything(teacher):
    workdir, log, cache = teacher
    summary = json.loads((workdir / 'summary.json').read_text())
    history = json.loads((workdir / 'history.json').read_text())
    assert [entry['epoch'] for entry in history] == [1, 2]  # as the console counts them
    assert summary['last_top1'] == history[-1]['top1'] and summary['epochs'] == 2
    # The best epoch: the highest top-1, the earliest of equals; its checkpoint is kept and named.
    best = max(history, key=lambda entry: (entry['top1'], -entry['epoch']))
    assert (summary['best_top1'], summary['best_top5'], summary['best_epoch'], summary['best_checkpoint']) == (
        best['top1'], best['top5'], best['epoch'], f"checkpoints/{best['step']}")
    assert f"(epoch {best['epoch']}, checkpoints/{best['step']})" in log
    assert sorted(os.listdir(workdir / 'checkpoints')) == ['2', '4']
    # One line per epoch, and a progress line within an epoch (every step here); no details.
    epoch_lines = re.findall(r'\] Epoch (\d)/2: test top-1 ([\d.]+)%, train top-1 ([\d.]+)%, loss [\d.]+; '
                             r'[\d.]+ s at [\d.]+ images/s, ETA', log)
    assert [(int(epoch), float(top1)) for epoch, top1, _ in epoch_lines] == [
        (entry['epoch'], round(entry['top1'], 2)) for entry in history]
    assert re.findall(r'\] step (\d)/4  loss', log) == ['1', '3']
    assert 'Total: 83,892' not in log and '[Hyperparameters]' not in log and '] [2] ' not in log
    assert 'Unable to initialize backend' not in log
    # Before the first step's long wait, a line says it compiles; after it, how long it took.
    compiling = log.index('Compiling the train step (or reading it from the compilation cache).')
    assert compiling < log.index('Compiled and ran the first step in ') < log.index('] step 1/4  loss')
    # TensorBoard: percentages, the learning rate of every step, the test loss of every epoch.
    written = scalars(workdir)
    assert written['learning_rate'] == {step: pytest.approx(0.05) for step in (1, 2, 3, 4)}
    assert written['test_loss'] == {entry['step']: pytest.approx(entry['loss']) for entry in history}
    assert written['test_top1'] == {entry['step']: pytest.approx(entry['top1']) for entry in history}
    # A step's top-1 over its 8 images, as a percentage: a multiple of 12.5 (a fraction: of 0.125).
    train_top1 = list(written['train_top1'].values())
    assert max(train_top1) > 1 and all(value % 12.5 == 0 for value in train_top1)
    assert [float(value) for value in epoch_lines[0][2:]] == [round(np.mean(train_top1[:2]), 2)]
    assert load_frozen_model(workdir / 'export').model_name == 'resnet8'
    assert 'Arithmetic: dtype float32, matmul and convolution precision default on cpu.' in log
    assert (summary['dtype'], summary['matmul_precision']) == ('float32', 'default')
    assert f'Compilation cache: {cache}.' in log
    assert any(name.startswith('jit_train_step') for name in os.listdir(cache))  # main.py fills it


@pytest.mark.parametrize('objective', [name for name in OBJECTIVES if name != 'ce'])
def test_each_objective_trains_end_to_end(objective, teacher, distilled, tmp_path):
    workdir, summary = distilled(objective)
    # The objectives that ship the student with its own classifier ship what KD ships: ONNX is
    # checked on KD's; theirs is exported as jax, which also tells that a head stays behind.
    alone = OBJECTIVES[objective].evaluation_classifier == 'student' and objective != 'kd'
    formats = ('jax',) if alone else ('jax', 'onnx')
    with tfds.testing.mock_data(num_examples=EXAMPLES):
        # The shipped model: its logits within 1e-4 of the training evaluation's (export_run
        # checks it and writes nothing otherwise; BatchNorm folded changes the order of the
        # arithmetic, measured ≤ 8.4e-7 on these runs), the teacher's backbone not in it.
        description = export_run(str(workdir), str(tmp_path / 'shipped'), formats=formats)
    assert max(description['parity']['max_abs_logit_difference'].values()) <= 1e-4
    assert description['parity']['images'] == EXAMPLES
    assert set(description['parameters']) == {'student', 'total'} | {
        'ijckd_joint': {'connector', 'joint_classifier'}, 'ijckd': {'connector', 'teacher_classifier'},
        'simkd': {'connector', 'teacher_classifier'},
        'ce_teacher_classifier': {'connector', 'teacher_classifier'}}.get(objective, set())
    teacher_summary = json.loads((teacher[0] / 'summary.json').read_text())
    assert summary['teacher_top1'] == pytest.approx(teacher_summary['last_top1'])
    assert summary['objective'] == objective and summary['epochs'] == 2
    assert 0 <= summary['last_top1'] <= 100 and 0 <= summary['last_top5'] <= 100
    assert sorted(os.listdir(workdir / 'checkpoints')) == ['2', '4']
    assert not (workdir / 'export').exists()
    # The teacher is never written into the student's checkpoints.
    # Nor the objective's own trainable head (FitNet's regressor, VID's estimators, CRD's bank)
    # in the export, which counts the student's parameters alone.
    parts = set(final_state(workdir)['params'])
    assert parts == {'student', 'connector', 'joint_classifier'} if objective == 'ijckd_joint' else \
        parts == ({'student', 'connector'} if OBJECTIVES[objective].uses_connector else
                  {'student', 'head'} if OBJECTIVES[objective].head else {'student'})


@pytest.mark.quick
def test_sgd_matches_torch_sgd_with_nesterov_weight_decay_and_multistep():
    config = cifar_teacher.get_config('resnet8').optimizer
    config.decay_epochs = (1, 2)
    optimizer = create_optimizer(config, steps_per_epoch=2)
    rng = np.random.default_rng(0)
    params = {'w': rng.standard_normal((3, 4)).astype(np.float32)}
    torch_parameter = torch.nn.Parameter(torch.from_numpy(params['w'].copy()))
    torch_optimizer = torch.optim.SGD([torch_parameter], lr=0.05, momentum=0.9, nesterov=True,
                                      weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(torch_optimizer, [1, 2], 0.1)
    state = optimizer.init(params)
    for step in range(6):
        gradient = rng.standard_normal((3, 4)).astype(np.float32)
        updates, state = optimizer.update({'w': gradient}, state, params)
        params = optax.apply_updates(params, updates)
        torch_parameter.grad = torch.from_numpy(gradient.copy())
        torch_optimizer.step()
        if step % 2 == 1:  # an epoch of 2 steps ends
            scheduler.step()
        np.testing.assert_allclose(params['w'], torch_parameter.detach().numpy(), rtol=1e-6, atol=1e-7)


def test_four_devices_give_the_same_steps_as_one(teacher):
    """The steps sharded over 4 devices are the steps on 1, within what rounding moves them
    (rounding.py): the batch statistics and the gradient are summed in another order. STEPS
    steps, not one: a single step's yardstick can miss a ReLU flip (rounding.py)."""
    config = distributed_config(str(teacher[0] / 'export'))
    with tfds.testing.mock_data(num_examples=EXAMPLES):
        batches = list(Pipeline(config, 0, 1).train_epoch(0))[:STEPS]
    teacher_variables = load_teacher(config)
    one, initial, *perturbed = run_steps(config, Mesh(CPU_DEVICES[:1]), [(batches, None), ([], None)] + [
        (batches, draw) for draw in range(DRAWS)], teacher_variables)
    [four] = run_steps(config, Mesh(CPU_DEVICES[:4]), [(batches, None)], teacher_variables)
    assert len(batches) == STEPS
    assert len(CPU_DEVICES) == 4
    assert beyond_rounding(four, one, perturbed) == []
    # The check can fail: the parameters before the step are far beyond rounding.
    assert beyond_rounding(initial['params'], one['params'], [run['params'] for run in perturbed])


def free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def test_two_processes_match_one_process_with_four_devices(teacher, tmp_path):
    """3 steps on 2 processes of 2 devices are those on 1 process of 4, within what rounding
    moves them (rounding.py): the collectives cross processes through gloo. Each process
    trains on its own part of every global batch, as its Pipeline reads it."""
    teacher_directory = str(teacher[0] / 'export')
    config = distributed_config(teacher_directory)
    with tfds.testing.mock_data(num_examples=EXAMPLES):
        parts = [list(Pipeline(config, index, PROCESSES).train_epoch(0))[:STEPS] for index in range(PROCESSES)]
    for index, part in enumerate(parts):
        np.savez(tmp_path / f'batches_{index}.npz', **{f'{name}_{step}': array for step, batch in enumerate(part)
                                                        for name, array in zip(('images', 'labels'), batch)})
    port, output = free_port(), tmp_path / 'params.npz'
    workers = [subprocess.Popen([sys.executable, os.path.join(REPOSITORY, 'tests', 'multiprocess_worker.py'),
                                 str(index), str(port), teacher_directory, str(tmp_path / f'batches_{index}.npz'),
                                 str(output)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for index in range(PROCESSES)]
    logs = [worker.communicate(timeout=600)[0] for worker in workers]
    assert all(worker.returncode == 0 for worker in workers), logs[0][-3000:] + logs[1][-3000:]

    # One process, four devices, fed the global batches the two processes assembled: each
    # process's part of every batch, in process order.
    batches = [tuple(np.concatenate(arrays) for arrays in zip(*step)) for step in zip(*parts)]
    assert len(CPU_DEVICES) == PROCESSES * DEVICES_PER_PROCESS
    expected, *perturbed = run_steps(config, Mesh(CPU_DEVICES), [(batches, draw) for draw in (None, *range(DRAWS))],
                                     load_teacher(config))
    distributed = traverse_util.unflatten_dict(dict(np.load(output)), sep='/')
    assert beyond_rounding(distributed, expected, perturbed) == []


def final_state(workdir):
    checkpoints = ocp.CheckpointManager(os.path.abspath(workdir / 'checkpoints'))
    return checkpoints.restore(checkpoints.latest_step(), args=ocp.args.StandardRestore())


@pytest.mark.parametrize('on_device', [True, False], ids=['data_on_device', 'host_batches'])
def test_a_resumed_run_ends_as_an_uninterrupted_one(teacher, tmp_path, on_device):
    def config(epochs):
        result = shrink(cifar_ijckd.get_config('resnet8-wrn_16_1'), num_epochs=epochs)
        result.teacher.checkpoint = str(teacher[0] / 'export')
        result.data.on_device = on_device
        return result

    with tfds.testing.mock_data(num_examples=EXAMPLES):
        uninterrupted = train_and_evaluate(config(3), str(tmp_path / 'whole'))
        train_and_evaluate(config(1), str(tmp_path / 'parts'))  # stopped after 2 steps
        resumed = train_and_evaluate(config(3), str(tmp_path / 'parts'))
    # Bit for bit: the resumed run runs the same compiled programs on the same inputs.
    assert resumed == uninterrupted
    whole, parts = final_state(tmp_path / 'whole'), final_state(tmp_path / 'parts')
    jax.tree.map(np.testing.assert_array_equal, whole, parts)
    assert json.loads((tmp_path / 'whole' / 'history.json').read_text()) == \
        json.loads((tmp_path / 'parts' / 'history.json').read_text())


def run_record(workdir, summary):
    """A finished run's final parameters, every epoch's metrics and its summary's accuracies."""
    history = json.loads((workdir / 'history.json').read_text())
    return {'params': final_state(workdir)['params'],
            'history': {str(entry['epoch']): entry for entry in history},
            'summary': {name: summary[name] for name in ('best_top1', 'last_top1', 'last_top5', 'teacher_top1')}}


def test_missing_teacher_checkpoint_stops_before_any_work(tmp_path):
    config = shrink(cifar_ijckd.get_config('resnet8-wrn_16_1'))
    config.teacher.checkpoint = str(tmp_path / 'absent')
    with pytest.raises(ConfigError, match="absent' is not a saved model \\(no model.json there\\). Convert PyTorch"):
        train_and_evaluate(config, str(tmp_path / 'run'))
    assert not (tmp_path / 'run').exists()


def test_teacher_of_another_architecture_is_refused(teacher, tmp_path):
    config = shrink(cifar_ijckd.get_config('resnet14-wrn_16_1'))
    config.teacher.checkpoint = str(teacher[0] / 'export')
    with pytest.raises(ValueError, match='holds resnet8 with 100 classes, but the config asks for resnet14'):
        train_and_evaluate(config, str(tmp_path / 'run'))
    assert not (tmp_path / 'run').exists()


def test_an_exploding_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, caplog):
    config = shrink(cifar_teacher.get_config('resnet8'), num_epochs=3)
    config.optimizer.decay_epochs, config.optimizer.decay_factor = (2,), 1e37  # lr 5e35 in epoch 3
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger=DETAILS.name)  # restored after the test
    show_details()  # as --verbose
    with tfds.testing.mock_data(num_examples=EXAMPLES):
        with pytest.raises(FloatingPointError, match=r'The loss is \S+ at step 6 \(over \S+, 1000× the first\)'):
            train_and_evaluate(config, str(tmp_path))
    assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['2', '4']
    assert int(final_state(tmp_path)['step']) == 4
    # The learning rate written is the schedule's: ×1e37 from the first step of epoch 3 (step 5).
    assert scalars(tmp_path)['learning_rate'] == {1: pytest.approx(0.05), 2: pytest.approx(0.05),
                                                  3: pytest.approx(0.05), 4: pytest.approx(0.05),
                                                  5: pytest.approx(5e35)}
    # The details --verbose shows: the parameter overview, the hyperparameters, each write.
    assert 'Total: 83,892' in caplog.text and "[Hyperparameters] {'checkpoints_to_keep': '3'," in caplog.text
    assert re.search(r'\[2\] learning_rate=0\.05, loss=[\d.]+, loss_ce=[\d.]+, train_top1=[\d.]+', caplog.text)


def test_on_a_tie_the_checkpoint_kept_as_the_best_is_the_summarys_best_epoch(tmp_path):
    """One rule (workdir.ranking) picks the summary's best epoch and the checkpoint kept as the
    best: the highest top-1, and of equals the earliest."""
    manager = checkpoints.checkpoint_manager(str(tmp_path), keep=1)
    entries = [{'epoch': epoch, 'step': 2 * epoch, 'top1': top1, 'top5': top5}
               for epoch, (top1, top5) in enumerate([(10.0, 50.0), (40.0, 60.0), (40.0, 70.0), (20.0, 80.0)], 1)]
    for entry in entries:
        state = TrainState(np.int32(entry['step']), {'w': np.zeros(2, np.float32)}, {'s': np.zeros(1, np.float32)},
                           {'m': np.zeros(2, np.float32)})
        checkpoints.save(manager, state, entry)
    manager.wait_until_finished()
    summary = summarize(entries, None, cifar_teacher.get_config('resnet8'))
    assert (summary['best_epoch'], summary['best_top1'], summary['best_top5'], summary['best_checkpoint']) == (
        2, 40.0, 60.0, 'checkpoints/4')
    assert sorted(os.listdir(tmp_path / 'checkpoints'), key=int) == ['4', '8']  # the best and the last


@pytest.mark.quick
def test_a_resumed_history_of_epochs_counted_from_0_is_counted_from_1(tmp_path):
    """history.json written before epochs were counted from 1 (its first entry is epoch 0)."""
    old = [{'epoch': epoch, 'step': 2 * (epoch + 1), 'top1': 10.0 * epoch, 'top5': 50.0} for epoch in range(3)]
    (tmp_path / 'history.json').write_text(json.dumps(old))
    history = History(str(tmp_path), finished_epochs=2)  # resumed after its checkpoint of epoch 2
    assert [(entry['epoch'], entry['step']) for entry in history.entries] == [(1, 2), (2, 4)]


def test_bfloat16_compute_stays_close_to_float32_over_a_few_steps(teacher):
    config = distributed_config(str(teacher[0] / 'export'))
    with tfds.testing.mock_data(num_examples=EXAMPLES):
        batches = list(Pipeline(config, 0, 1).train_epoch(0))[:3]
    teacher_variables, mesh = load_teacher(config), Mesh(CPU_DEVICES[:1])
    initial, full = run_steps(config, mesh, [([], None), (batches, None)], teacher_variables)
    config.dtype = 'bfloat16'
    [low] = run_steps(config, mesh, [(batches, None)], teacher_variables)
    initial = initial['params']
    (full, full_losses), (low, low_losses) = ((run['params'], run['loss']) for run in (full, low))
    # bfloat16 keeps 8 bits of mantissa (0.4% relative rounding) in every activation and
    # gradient: losses stay within 2%, and each parameter moves in the same direction as in
    # float32 (cosine of the two 3-step updates ≥ 0.8, median ≥ 0.9; measured 0.85 and 0.95).
    np.testing.assert_allclose(low_losses, full_losses, rtol=0.02)
    cosines = []
    for path, value in traverse_util.flatten_dict(full, sep='/').items():
        low_value = traverse_util.flatten_dict(low, sep='/')[path]
        assert low_value.dtype == np.float32, path
        start = traverse_util.flatten_dict(initial, sep='/')[path]
        update, low_update = (value - start).ravel(), (low_value - start).ravel()
        if np.linalg.norm(update) > 0:
            cosines.append(update @ low_update / np.linalg.norm(update) / np.linalg.norm(low_update))
    assert min(cosines) >= 0.8 and np.median(cosines) >= 0.9


def test_several_steps_per_dispatch_are_the_same_steps(teacher):
    """With the split on the devices, 3 steps as one scan of 2 and a single step equal 3
    single steps, the losses and the parameters, within what rounding moves them (rounding.py):
    the scan is compiled as another program."""
    config = distributed_config(str(teacher[0] / 'export'))
    with tfds.testing.mock_data(num_examples=EXAMPLES):
        pipeline = Pipeline(config, 0, 1, len(CPU_DEVICES))
    mesh = Mesh(CPU_DEVICES)
    split = device_data.place_split(pipeline.train_split, mesh)
    experiment = create_experiment(config, mesh, pipeline.steps_per_epoch, load_teacher(config))
    batch = SplitBatch(*split, device_data.epoch_order(split, 0, mesh, config.seed), experiment.seeds)
    [row] = experiment.state
    initial = experiment.state[row].params

    def trajectory(per_dispatch, steps=3, params=initial):
        state = jax.tree.map(jnp.copy, {row: experiment.state[row].replace(params=params)})  # the steps donate it
        losses = []
        for count in dispatches(steps, per_dispatch):
            state, metrics = train_steps.dispatch(state, experiment.teacher_variables, batch, experiment.spec, count)
            losses.extend(np.atleast_1d(jax.device_get(metrics[row]['loss'])))
        return {'loss': np.array(losses), 'params': jax.device_get(state[row].params)}

    single, scanned = trajectory(1), trajectory(2)
    perturbed = [trajectory(1, params=one_ulp_away(initial, draw)) for draw in range(DRAWS)]
    assert dispatches(3, 2) == [2, 1] and len(scanned['loss']) == 3
    assert beyond_rounding(scanned, single, perturbed) == []
    # The check can fail: one step fewer is far beyond rounding.
    assert beyond_rounding(trajectory(1, steps=2)['params'], single['params'], [run['params'] for run in perturbed])


def test_evaluation_reads_the_teachers_logits_computed_once_and_drops_its_backbone(teacher):
    """The teacher's logits on the test split, computed once per run, give every epoch's
    evaluation the same sums as running the teacher in it, and the compiled evaluation step
    then holds no convolution of the teacher (resnet8: 9)."""
    config = distributed_config(str(teacher[0] / 'export'))
    with tfds.testing.mock_data(num_examples=EXAMPLES):
        pipeline = Pipeline(config, 0, 1, len(CPU_DEVICES))
    mesh = Mesh(CPU_DEVICES)
    experiment = create_experiment(config, mesh, pipeline.steps_per_epoch, load_teacher(config))
    batches = list(pipeline.evaluation())
    logits = [mesh.settled(train_steps.teacher_logits(experiment.teacher_variables, *mesh.shard(images),
                                                      experiment.spec))
              for images, _, _ in batches]

    def step(batch):
        return train_steps.evaluate(experiment.state, experiment.teacher_variables, batch, experiment.spec)
    with_logits, without = (evaluate(step, batches, mesh, given)['ijckd'] for given in (logits, None))
    assert with_logits.keys() == without.keys() and 'delta2' in with_logits
    # Measured equal to the last bit here. The teacher's logits come from another program, one
    # forward pass that nothing amplifies: rel 1e-6 allows them a few roundings, while a wrong
    # batch or model moves these sums by whole examples (1/32 of the split at least).
    for name, value in without.items():
        assert with_logits[name] == pytest.approx(value, rel=1e-6, abs=1e-9), name

    def convolutions(batch):
        compiled = train_steps.evaluate.lower(experiment.state, experiment.teacher_variables, batch,
                                              experiment.spec).compile().as_text()
        return compiled.count(' convolution(')

    arguments = mesh.shard(*batches[0])
    assert convolutions((*arguments, None)) - convolutions((*arguments, logits[0])) == 9


# A subprocess, so that a deadlock aborts it and not this worker: XLA aborts a process whose
# all-reduce has waited past the terminate timeout, here 10 s instead of 40 s.
QUEUED_COLLECTIVES = '''
import jax, jax.numpy as jnp, numpy as np
jax.config.update('jax_num_cpu_devices', 4)
from ijckd_jax.training.loop import evaluate
from ijckd_jax.training.mesh import Mesh
mesh = Mesh()
weights = mesh.replicate(np.eye(256, dtype=np.float32))

@jax.jit
def step(batch):
    images, _, mask, _ = batch
    return {'gram': jnp.tanh(images.T @ images) @ weights, 'count': jnp.sum(mask)}

rng = np.random.default_rng(0)
batches = [(rng.standard_normal((64, 256)).astype(np.float32), np.zeros(64, np.int32), np.ones(64, np.float32))
           for _ in range(480)]
gram = evaluate(step, batches, mesh)['gram']
expected = sum(np.tanh(images.astype(np.float64).T @ images) for images, _, _ in batches) / (64 * 480)
print('waits:', mesh.waits, 'error:', float(np.max(np.abs(gram - expected))))
'''


def test_programs_with_collectives_queued_on_several_cpu_devices_do_not_deadlock():
    """XLA's CPU runtime deadlocks (and aborts) when programs with all-reduces queue up on
    several CPU devices (mesh.py): 480 evaluation batches of a step with one, and evaluate
    waits for each (Mesh.settled, as train_epoch and evaluate_teacher do). Without the wait
    this aborted 4 runs out of 5 (Intel Xeon, 2 cores)."""
    flags = '--xla_cpu_collective_call_terminate_timeout_seconds=10'
    result = subprocess.run([sys.executable, '-c', QUEUED_COLLECTIVES], capture_output=True, text=True,
                            cwd=REPOSITORY, timeout=300, env={**os.environ, 'XLA_FLAGS': flags})
    assert result.returncode == 0, result.stderr[-3000:]
    waits, error = re.search(r'waits: (\w+) error: (\S+)', result.stdout).groups()
    # Each entry is a mean over 64 × 480 examples of tanh of a float32 Gram entry. Rounding, about
    # at worst: 64 products of two normal values (≤ 64 · 6e-8 · 64 each) through tanh (slope ≤ 1)
    # and a float32 running sum of 480 terms below 480 (≤ 480 · 6e-8 · 480), 4.4e-6 after the
    # division; measured 1.7e-9. A batch left out moves a diagonal entry by 1/30720 = 3.3e-5.
    assert waits == 'True' and float(error) <= 1e-5
