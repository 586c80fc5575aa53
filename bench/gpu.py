"""Every GPU figure the README owes, in one run: for whoever is lent a GPU for a few minutes.

    python bench/gpu.py --out runs/gpu --cifar10 synthetic       # on one H100/H200: under 6 minutes
    python bench/gpu.py --out runs/gpu --cifar10 ../shared/data/cifar10_jpeg.tar
    python bench/gpu.py --out /tmp/gpu --smoke                   # every item at its smallest, on a CPU

It measures, in this order, each item within its own time budget and all of them within a
global deadline (DEADLINE seconds):

1. environment: the device, the driver, the versions, what float32 means for each framework;
2. step: our IJCKD step resnet32x4 → resnet8x4 at batch 64 and 256, float32 (TF32, XLA's
   default on GPUs) and bfloat16, 1 and 16 steps per dispatch (steps.dispatch of count steps,
   the batch drawn from a CIFAR-sized split on the device), against bench/step.py's PyTorch step
   on the same device: eager, and the whole step (forward, backward, SGD) in one CUDA graph;
3. seeds: 5 seeds vmapped in one step against 1 seed;
4. table: the comparison table's step (ce, kd, srrl, simkd, ijckd) against the sum of its
   methods' own steps (bench/step.py --table);
5. epoch: main.py on CIFAR-10 image folders with a random teacher, 3 epochs at 16 steps per
   dispatch, and the 240 epochs projected from them. --cifar10 names a folder with train/ and
   test/ class folders, a tar archive of one (unpacked into --out), or 'synthetic': a
   CIFAR-10-sized folder of random JPEGs written into --out (the teacher is random, so only the
   sizes matter; for a machine the 88 MiB archive cannot be carried to);
6. input: bench/input.py's ImageNet-style input on one core (taskset -c 0) and on all cores.

After every figure the table is written to DIR/gpu.md and the raw numbers to DIR/gpu.json, so
that a run stopped at any point keeps what it measured. A figure that fails reads 'failed:
REASON' and the run goes on; one that the time left does not allow reads 'skipped: out of time'.
The table (figure | command | value) is printed at the end. Compiled programs are kept in
DIR/xla, so that a rerun with the same --out compiles nothing again. It needs the project
installed (pip install -e .) or on the path (PYTHONPATH=. in the checkout), and its requirements:
ml_collections and clu among them; not TensorFlow (image folders stream through PIL).
"""
import argparse
import contextlib
import importlib.metadata
import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import threading
import time
from types import SimpleNamespace

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# JAX takes 75% of the GPU's memory at its first use unless told otherwise; PyTorch in this
# process and main.py's JAX in item 5 need theirs too.
os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')

import jax
import numpy as np
import torch

# bench/step.py, beside this file: the building blocks of both frameworks' steps.
from step import (EXAMPLES, STEPS_PER_EPOCH, TorchStep, benchmark_table, build_config,
                  cifar_sized_split, random_batch, teacher_weights)
from ijckd_jax.data.device import epoch_order, place_split
from ijckd_jax.frozen_model import FrozenModel, save_frozen_model
from ijckd_jax.runtime import enable_compilation_cache
from ijckd_jax.training import steps
from ijckd_jax.training.experiment import create_experiment
from ijckd_jax.training.mesh import Mesh
from ijckd_jax.training.steps import SplitBatch

# Seconds for the whole run: 6 minutes on the loan, less the imports and a figure begun just before it.
DEADLINE = 330
# The smoke run checks that every code path runs, not how fast: on a busy machine (CI, two test
# workers) its figures must not run out of time, so its budgets are only a guard against a hang.
SMOKE_DEADLINE = 900
SKIPPED = 'skipped: out of time'
CIFAR10_MEAN, CIFAR10_STD = '(0.4914, 0.4822, 0.4465)', '(0.2470, 0.2435, 0.2616)'
CIFAR10_CLASSES = 10
EPOCHS_PROJECTED = 240
VERSIONS = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'torch')
# The packages the project imports that a GPU image may lack; TensorFlow only for tfds data sets.
PROJECT_MODULES = ('ml_collections', 'clu', 'tensorflow', 'tensorflow_datasets')

# What each item measures: FULL on the GPU, SMOKE the smallest that runs every code path. Each
# item stops starting figures once its budget (seconds) is spent.
FULL = SimpleNamespace(pair='resnet32x4-resnet8x4', image_size=32, batches=(64, 256), dtypes=('float32', 'bfloat16'),
                       dispatches=(1, 16), rounds=5, seeds=5, methods='ce,kd,srrl,simkd,ijckd', table_repeats=10,
                       epochs=3, steps_per_epoch=-1, run_batch=64, synthetic_per_class=(5000, 1000),
                       input_images=1024, input_batch=64, input_cores=('one core', 'all cores'),
                       deadline=DEADLINE, budgets=dict(environment=10, step=120, seeds=30, table=55, epoch=100,
                                                       input=40))
# 8 pixels, the smallest the CIFAR networks take: on a CPU the steps scanned in one dispatch run far
# slower than single steps (7× at 32 pixels, 100× with XLA's optimizations off as in the tests).
# bfloat16 alone: its PyTorch step (autocast, channels_last) runs every line float32's does. A table
# of one method: each method compiles a table step and its own. The input on all cores alone: on
# one core it is the same command under taskset.
SMOKE = SimpleNamespace(pair='resnet8-resnet8', image_size=8, batches=(8,), dtypes=('bfloat16',), dispatches=(1, 2),
                        rounds=2, seeds=5, methods='kd', table_repeats=2, epochs=2, steps_per_epoch=2,
                        run_batch=8, synthetic_per_class=(8, 2), input_images=64, input_batch=8,
                        input_cores=('all cores',),
                        deadline=SMOKE_DEADLINE, budgets=dict.fromkeys(FULL.budgets, SMOKE_DEADLINE))


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', required=True, help='where gpu.md, gpu.json and the run of item 5 go')
    parser.add_argument('--cifar10', default='',
                        help="CIFAR-10 image folders, a tar archive of them, or 'synthetic'; without it "
                             'item 5 is skipped (in --smoke a tiny synthetic folder is used)')
    parser.add_argument('--smoke', action='store_true', help='every item at its smallest, on this CPU')
    return parser.parse_args()


class Recorder:
    """The rows measured so far, written to DIR/gpu.md and DIR/gpu.json after each one, and
    the time each item has left."""

    def __init__(self, out, smoke, deadline):
        self.out, self.smoke, self.rows, self.started = out, smoke, [], time.monotonic()
        self.deadline = self.item_deadline = self.started + deadline

    def start_item(self, budget):
        self.item_deadline = min(self.deadline, time.monotonic() + budget)

    def time_left(self):
        return self.item_deadline - time.monotonic()

    def add(self, figure, command, value, **numbers):
        self.rows.append(dict(figure=figure, command=command, value=value, **numbers))
        # Progress, with the seconds spent so far: what a budget that is too small shows first.
        print(f'[{time.monotonic() - self.started:.0f} s] {figure}: {value}', file=sys.stderr, flush=True)
        self.write()

    def measure(self, figure, command, function, images=None):
        """The row of function(): its value, or, where `images` (per step) is given, its seconds
        per step; a failure or the item's time spent is the row's value. Returns the seconds, or
        None."""
        if self.time_left() <= 0:
            self.add(figure, command, SKIPPED)
            return None
        try:
            result = function()
        except Exception as error:  # one figure's failure is its row; the others still run
            self.add(figure, command, failed(error))
            return None
        if isinstance(result, str):
            self.add(figure, command, result)
            return None
        self.add(figure, command, f'{result * 1000:.2f} ms/step ({images / result:,.0f} img/s)',
                 seconds_per_step=result, images_per_second=images / result)
        return result

    def markdown(self):
        lines = ['| figure | command | value |', '| --- | --- | --- |']
        lines += [f"| {cell(row['figure'])} | {cell(row['command'])} | {cell(row['value'])} |" for row in self.rows]
        return '\n'.join(lines) + '\n'

    def write(self):
        with open(os.path.join(self.out, 'gpu.md'), 'w') as file:
            file.write(self.markdown())
        with open(os.path.join(self.out, 'gpu.json'), 'w') as file:
            json.dump(dict(smoke=self.smoke, rows=self.rows), file, indent=1)


def cell(text):
    return str(text).replace('|', '\\|').replace('\n', ' ')


def failed(error):
    lines = str(error).strip().splitlines()
    return f"failed: {type(error).__name__}: {lines[-1] if lines else ''}"[:300]


def environment(recorder, arguments, sizes):
    """Item 1: the device, the driver, the versions and what float32 means on each side."""
    device = jax.devices()[0]
    capability = getattr(device, 'compute_capability', None)
    recorder.measure('environment: device', 'jax.devices()', lambda: (
        f'{device.device_kind} ×{jax.device_count()} ({jax.default_backend()}'
        f"{f', compute capability {capability}' if capability else ''}); torch sees "
        f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA'}"))
    recorder.measure('environment: driver', 'nvidia-smi --query-gpu=name,driver_version --format=csv,noheader',
                     driver)
    recorder.measure('environment: versions', 'importlib.metadata.version', versions)
    recorder.measure('environment: JAX float32 matmul and convolution precision',
                     'jax.config.jax_default_matmul_precision', lambda: jax_precision(capability))
    recorder.measure('environment: PyTorch defaults', 'torch.backends', torch_flags)
    recorder.measure('environment: packages the project imports that are missing',
                     'importlib.util.find_spec', lambda: ', '.join(
                         name for name in PROJECT_MODULES if importlib.util.find_spec(name) is None) or 'none')


def driver():
    if not shutil.which('nvidia-smi'):
        return 'no nvidia-smi'
    return subprocess.run(['nvidia-smi', '--query-gpu=name,driver_version', '--format=csv,noheader'],
                          capture_output=True, text=True, timeout=30, check=True).stdout.strip()


def versions():
    found = []
    for name in VERSIONS:
        try:
            found.append(f'{name} {importlib.metadata.version(name)}')
        except importlib.metadata.PackageNotFoundError:
            found.append(f'{name} absent')
    if torch.cuda.is_available():
        found.append(f'(torch CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()})')
    return ', '.join(found)


def jax_precision(capability):
    setting = jax.config.jax_default_matmul_precision or 'default'
    if jax.default_backend() != 'gpu':
        return f'{setting}: full float32 on {jax.default_backend()}'
    tf32 = setting in ('default', 'tensorfloat32') and capability and float(capability) >= 8
    return f"{setting}: {'TF32, XLA default on this GPU' if tf32 else 'full float32'}"


def torch_flags():
    return (f'cuda.matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}, '
            f'cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}, '
            f'float32_matmul_precision={torch.get_float32_matmul_precision()}, '
            f'cudnn.benchmark={torch.backends.cudnn.benchmark}')


def seconds_per_step(call, steps_per_call, calls, rounds, synchronize):
    """The median over `rounds` of the time per step of `calls` calls run back to back and
    synchronised once, as a training loop runs them; after two warm-up calls (the first
    compiles)."""
    for _ in range(2):
        call()
    synchronize()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        synchronize()
        times.append((time.perf_counter() - start) / (calls * steps_per_call))
    return statistics.median(times)


def step_config(sizes, batch, dtype):
    """bench/step.py's config of the IJCKD step of sizes.pair."""
    return build_config(argparse.Namespace(pair=sizes.pair, objective='ijckd', batch=batch,
                                           image_size=sizes.image_size, dtype=dtype))


def our_seconds(experiment, state, batch, count, sizes):
    """Seconds per step of steps.dispatch of `count` steps, the batch drawn on the device;
    `state` holds the train state, which each step donates and replaces."""
    def call():  # waited for only on several CPU devices (Mesh.settled)
        state[0], _ = experiment.spec.mesh.settled(
            steps.dispatch(state[0], experiment.teacher_variables, batch, experiment.spec, count))

    steps_per_round = max(sizes.dispatches)
    return seconds_per_step(call, count, steps_per_round // count, sizes.rounds,
                            lambda: jax.block_until_ready(state[0]))


def device_inputs(split, mesh, experiment):
    """The train step's batch with the split on the devices: the split, epoch 0's order, the seeds."""
    return SplitBatch(*split, epoch_order(split, 0, mesh, experiment.seeds), experiment.seeds)


class DeviceTorchStep(TorchStep):
    """bench/step.py's PyTorch IJCKD step on `device` (its own runs on the CPU), its networks
    and input in `memory_format`, bfloat16 under autocast on that device; `capturing` turns
    autocast's weight cache off, which a CUDA graph requires."""

    def __init__(self, config, teacher_state, device, memory_format):
        super().__init__(config, teacher_state)
        self.device, self.memory_format, self.capturing = device, memory_format, False
        for module in (self.student, self.teacher, self.connector):
            module.to(device, memory_format=memory_format)  # in place: the SGD keeps its parameters
        self.mean, self.std = self.mean.to(device), self.std.to(device)

    def normalize(self, images):
        return super().normalize(images).contiguous(memory_format=self.memory_format)

    def __call__(self, images, labels):
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bfloat16,
                            cache_enabled=not self.capturing):
            loss = self.forward(images, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss


def synchronizer(device):
    return torch.cuda.synchronize if device.type == 'cuda' else lambda: None


def graph_seconds(torch_step, images, labels, sizes):
    """Seconds per step of the whole PyTorch step captured in one CUDA graph and replayed on
    the same (static) batch; 'no CUDA' without a GPU."""
    if torch_step.device.type != 'cuda':
        return 'no CUDA'
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # cuDNN's autotuning and the SGD's momentum buffers, before the capture
        for _ in range(3):
            torch_step(images, labels)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    torch_step.capturing = True
    torch_step.optimizer.zero_grad(set_to_none=True)  # the gradients are allocated in the graph's pool
    with torch.cuda.graph(graph):
        torch_step(images, labels)
    return seconds_per_step(graph.replay, 1, max(sizes.dispatches), sizes.rounds, torch.cuda.synchronize)


def configure_torch():
    """PyTorch's float32 as XLA's on GPUs (TF32 matrix products and convolutions), and cuDNN's
    autotuner, as XLA autotunes its convolutions."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True


def ijckd_step(recorder, arguments, sizes):
    """Item 2: our step at each batch, dtype and steps per dispatch, and PyTorch's beside it."""
    configure_torch()
    recorder.measure('step: PyTorch settings', 'configure_torch()', torch_flags)
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    mesh = Mesh()
    split = place_split(cifar_sized_split(sizes.image_size), mesh)
    teacher_state, teacher_variables = teacher_weights(step_config(sizes, sizes.batches[0], sizes.dtypes[0]))
    gpu = jax.default_backend() == 'gpu'
    for batch in sizes.batches:
        for dtype in sizes.dtypes:
            config = step_config(sizes, batch, dtype)
            cell = f'{sizes.pair}, batch {batch}'
            ours = f"{dtype}{' (TF32)' if gpu and dtype == 'float32' else ''}"
            our_rows(recorder, config, mesh, split, teacher_variables, sizes, f'step: ours {ours}, {cell}')
            torch_rows(recorder, config, teacher_state, device, sizes, cell)


def our_rows(recorder, config, mesh, split, teacher_variables, sizes, figure):
    """Our rows of one batch and dtype, one per number of steps per dispatch."""
    experiment = create_experiment(config, mesh, STEPS_PER_EPOCH, teacher_variables, EXAMPLES)
    inputs, state = device_inputs(split, mesh, experiment), [experiment.state]
    for count in sizes.dispatches:
        recorder.measure(f'{figure}, {count} step(s) per dispatch',
                         f'steps.dispatch of {count} step(s), the batch drawn on the device',
                         lambda: our_seconds(experiment, state, inputs, count, sizes),
                         images=config.global_batch_size)


def torch_rows(recorder, config, teacher_state, device, sizes, cell):
    """PyTorch's rows of one batch and dtype: eager, then the same step in a CUDA graph."""
    bfloat16 = config.dtype == 'bfloat16'
    if bfloat16:
        mode, memory_format = 'bfloat16 autocast, channels_last', torch.channels_last
    else:
        mode, memory_format = 'TF32' if device.type == 'cuda' else 'float32', torch.contiguous_format
    torch_step = DeviceTorchStep(config, teacher_state, device, memory_format)
    images, labels = random_batch(config, config.global_batch_size)
    images, labels = torch.from_numpy(images).to(device), torch.from_numpy(labels).long().to(device)
    recorder.measure(f'step: PyTorch eager {mode}, {cell}', 'TorchStep (bench/step.py) on the device',
                     lambda: seconds_per_step(lambda: torch_step(images, labels), 1, max(sizes.dispatches),
                                              sizes.rounds, synchronizer(device)),
                     images=config.global_batch_size)
    recorder.measure(f'step: PyTorch CUDA graph {mode}, {cell}',
                     'torch.cuda.graph of the whole step, static batch, SGD inside',
                     lambda: graph_seconds(torch_step, images, labels, sizes), images=config.global_batch_size)


def seeds(recorder, arguments, sizes):
    """Item 3: one step for `sizes.seeds` seeds vmapped against one seed's step."""
    mesh, batch = Mesh(), sizes.batches[0]
    split = place_split(cifar_sized_split(sizes.image_size), mesh)
    config = step_config(sizes, batch, sizes.dtypes[0])  # item 2's first step, compiled there
    _, teacher_variables = teacher_weights(config)
    measured = []
    for count in (1, sizes.seeds):
        config.seeds = tuple(range(count)) if count > 1 else ()
        experiment = create_experiment(config, mesh, STEPS_PER_EPOCH, teacher_variables, EXAMPLES)
        inputs = device_inputs(split, mesh, experiment)
        measured.append(recorder.measure(
            f"seeds: {count} seed{'s vmapped' if count > 1 else ''}, {sizes.pair}, batch {batch}, {config.dtype}",
            f'python bench/step.py --pair {sizes.pair} --data-on-device --seeds {count} --batch {batch} (ours)',
            lambda: our_seconds(experiment, [experiment.state], inputs, 1, sizes), images=batch * count))
    one, several = measured
    ratio = (f'{several / one:.2f} (the {sizes.seeds} runs in {several / one:.2f}× one run\'s time)'
             if one and several else 'failed: a step above did not run')
    recorder.add(f'seeds: {sizes.seeds} seeds vmapped / 1 seed, per step', 'the two rows above', ratio)


def table(recorder, arguments, sizes):
    """Item 4: bench/step.py --table, its printed medians read back."""
    batch = sizes.batches[0]
    options = argparse.Namespace(pair=sizes.pair, table=sizes.methods, seeds=1, seeds_vectorized='auto',
                                 dtype='float32', batch=batch, data_on_device=True, repeats=sizes.table_repeats)
    command = (f'python bench/step.py --pair {sizes.pair} --table {sizes.methods} --batch {batch} '
               f'--data-on-device --repeats {sizes.table_repeats}')
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        benchmark_table(options)
    medians = {name: float(ms) for name, ms in re.findall(r'^\| ([\w ]+?) \| ([\d.]+) ms \|', printed.getvalue(),
                                                          re.MULTILINE)}
    ratio = re.search(r'table / sum of separate steps: ([\d.]+)', printed.getvalue())
    if 'table' not in medians or ratio is None:
        raise RuntimeError(f'bench/step.py --table printed no medians: {printed.getvalue()[-200:]!r}')
    separate = medians.pop('sum of separate steps')
    recorder.add(f'table: the table\'s step ({sizes.methods}), {sizes.pair}, batch {batch}', command,
                 f"{medians['table']:g} ms", milliseconds=medians)
    recorder.add("table: the sum of the methods' own steps", command, f'{separate:g} ms')
    recorder.add('table: the table\'s step / the sum of its methods\' steps', command, ratio.group(1),
                 ratio=float(ratio.group(1)))


def epoch(recorder, arguments, sizes):
    """Item 5: main.py on CIFAR-10 folders with a random teacher; the first epoch, an epoch
    after it, and the run of EPOCHS_PROJECTED epochs projected from them."""
    source = arguments.cifar10 or ('synthetic' if arguments.smoke else '')
    if not source:
        recorder.add('epoch: a real run on CIFAR-10 folders', '', 'skipped: no --cifar10')
        return
    data = cifar10_folder(source, arguments.out, sizes)
    teacher = random_teacher(os.path.join(arguments.out, 'teacher'), sizes)
    workdir = os.path.join(arguments.out, 'epoch_run')
    shutil.rmtree(workdir, ignore_errors=True)  # a fresh run, not the resumption of an earlier one
    command = ['main.py', '--config', f'configs/cifar_ijckd.py:{sizes.pair}', '--workdir', workdir,
               f'--config.teacher.checkpoint={teacher}', f'--config.data.dataset={data}',
               f'--config.data.num_classes={CIFAR10_CLASSES}', f'--config.data.mean={CIFAR10_MEAN}',
               f'--config.data.std={CIFAR10_STD}', f'--config.num_epochs={sizes.epochs}',
               '--config.steps_per_dispatch=16', f'--config.steps_per_epoch={sizes.steps_per_epoch}',
               f'--config.data.image_size={sizes.image_size}',
               f'--config.global_batch_size={sizes.run_batch}', f'--config.eval_batch_size={sizes.run_batch}',
               f'--config.compilation_cache={jax.config.jax_compilation_cache_dir or ""}']
    shown = shlex.join(['python', *command])
    lines, returncode = timed_lines([sys.executable, *command], os.path.join(arguments.out, 'epoch.log'),
                                    recorder.time_left())
    ends = [seconds for seconds, line in lines if re.search(r'Epoch \d+/\d+: test top-1', line)]
    if returncode not in (0, None) or not ends:
        status = 'was stopped, out of time,' if returncode is None else f'exited with {returncode}'
        raise RuntimeError(f"main.py {status} after {len(ends)} epochs: {lines[-1][1] if lines else 'no output'}")
    recorder.add('epoch: the first epoch (start, data, compile, train, evaluate)', shown,
                 f'{ends[0]:.1f} s', seconds=ends[0])
    if len(ends) < 2:
        recorder.add('epoch: an epoch after the first (train, evaluate, checkpoint)', shown, SKIPPED)
        return
    steady = (ends[-1] - ends[0]) / (len(ends) - 1)
    recorder.add('epoch: an epoch after the first (train, evaluate, checkpoint)', shown, f'{steady:.2f} s',
                 seconds=steady)
    projected = ends[0] + (EPOCHS_PROJECTED - 1) * steady
    recorder.add(f'epoch: {EPOCHS_PROJECTED} epochs, projected',
                 f'the first epoch + {EPOCHS_PROJECTED - 1} × an epoch after it',
                 f'{time.strftime("%H:%M:%S", time.gmtime(projected))} ({projected:.0f} s)', seconds=projected)
    rates = [float(rate) for _, line in lines for rate in re.findall(r'([\d.]+) images/s', line)]
    if rates:
        recorder.add('epoch: training images/s, the run\'s last progress line', shown, f'{rates[-1]:,.0f} img/s',
                     images_per_second=rates[-1])


def cifar10_folder(source, out, sizes):
    """The image folder of `source`: itself, the root of its unpacked archive, or a synthetic
    CIFAR-10-sized one written into `out`."""
    if source == 'synthetic':
        return write_synthetic_folder(os.path.join(out, 'cifar10_synthetic'), *sizes.synthetic_per_class)
    if os.path.isdir(source):
        return os.path.abspath(source)
    root = os.path.join(out, 'cifar10')
    if not os.path.isdir(os.path.join(root, 'train')):
        with tarfile.open(source) as archive:
            archive.extractall(root, filter='data')
    return root


def write_synthetic_folder(root, train_per_class, test_per_class):
    """train/ and test/ of CIFAR-10's shape: 10 classes of 32×32 JPEGs of random pixels."""
    from PIL import Image

    if os.path.isdir(os.path.join(root, 'train')):
        return root
    generator = np.random.default_rng(0)
    staging = root + '.partial'  # a folder interrupted while written is never taken for a whole one
    shutil.rmtree(staging, ignore_errors=True)
    for split, count in (('train', train_per_class), ('test', test_per_class)):
        for label in range(CIFAR10_CLASSES):
            directory = os.path.join(staging, split, f'class{label}')
            os.makedirs(directory)
            for index in range(count):
                pixels = generator.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(os.path.join(directory, f'{index:04d}.jpg'), quality=75)
    os.rename(staging, root)
    return root


def random_teacher(directory, sizes):
    """A randomly initialised teacher of sizes.pair with CIFAR-10's classes, saved as the converter
    saves one (PyTorch's initialisation, converted)."""
    config = step_config(sizes, sizes.run_batch, 'float32')
    config.data.num_classes = CIFAR10_CLASSES
    _, variables = teacher_weights(config)
    save_frozen_model(directory, FrozenModel(config.teacher.model, CIFAR10_CLASSES, variables),
                      source='random initialisation (bench/gpu.py)', replace=True)
    return directory


def timed_lines(command, log, timeout):
    """Runs `command` in the checkout, stopped after `timeout` seconds; returns its output
    lines, each with the seconds since the start at which it came, and its exit status (None
    where it was stopped). The output is kept in `log` too."""
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []

    def read():
        for line in process.stdout:
            lines.append((time.monotonic() - start, line.rstrip('\n')))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        returncode = process.wait(timeout=max(timeout, 1))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        returncode = None
    reader.join()
    with open(log, 'w') as file:
        file.writelines(f'{seconds:8.2f} {line}\n' for seconds, line in lines)
    return lines, returncode


def input_rate(recorder, arguments, sizes):
    """Item 6: bench/input.py on one core and on all of them (sizes.input_cores)."""
    command = ['bench/input.py', '--images', str(sizes.input_images), '--batch', str(sizes.input_batch)]
    prefixes = {'one core': ['taskset', '-c', '0'] if shutil.which('taskset') else None, 'all cores': []}
    for where in sizes.input_cores:
        prefix = prefixes[where]
        figure = f'input: ImageNet-style crops, {where}'
        shown = shlex.join([*(prefix or []), 'python', *command])
        if prefix is None:
            recorder.add(figure, shown, 'skipped: no taskset')
        else:
            recorder.measure(figure, shown, lambda: input_line([*prefix, sys.executable, *command], recorder))


def input_line(command, recorder):
    """bench/input.py's rates and its ratio to the bare decode, as the row's value."""
    result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True,
                            timeout=max(recorder.time_left(), 1))
    rates = re.search(r'^\d+ core\(s\): .*$', result.stdout, re.MULTILINE)
    ratio = re.search(r'^pipeline / bare: .*$', result.stdout, re.MULTILINE)
    if result.returncode or not rates or not ratio:
        raise RuntimeError(f'bench/input.py exited with {result.returncode}: '
                           f'{(result.stderr.strip().splitlines() or ["no output"])[-1]}')
    return f'{rates.group(0)}; {ratio.group(0)}'


ITEMS = (('environment', environment), ('step', ijckd_step), ('seeds', seeds), ('table', table),
         ('epoch', epoch), ('input', input_rate))


def main():
    arguments = parse_arguments()
    os.makedirs(arguments.out, exist_ok=True)
    arguments.out = os.path.abspath(arguments.out)
    # Compiled programs kept, so that a rerun after a failure or a timeout compiles nothing
    # again; a cache the caller set (the test suite's) is used as it is.
    if not jax.config.jax_compilation_cache_dir:
        enable_compilation_cache(os.path.join(arguments.out, 'xla'))
    sizes = SMOKE if arguments.smoke else FULL
    recorder = Recorder(arguments.out, arguments.smoke, sizes.deadline)
    for name, item in ITEMS:
        if time.monotonic() >= recorder.deadline:
            recorder.add(f'{name}: every figure', '', SKIPPED)
            continue
        recorder.start_item(sizes.budgets[name])
        try:
            item(recorder, arguments, sizes)
        except Exception as error:  # the item's remaining figures are lost, the next items still run
            recorder.add(f'{name}: the figures not measured', '', failed(error))
    print(recorder.markdown(), end='')


if __name__ == '__main__':
    main()
