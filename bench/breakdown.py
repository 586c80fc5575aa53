"""Where the time of one train step goes: ours per XLA operation, PyTorch's per ATen operator.

    python bench/breakdown.py --pair resnet56-resnet20 --objective ijckd --batch 64

Our step runs under jax.profiler; each executed XLA operation is put in a class by what the
optimized HLO says it is: a convolution's forward pass, its input gradient or its kernel
gradient, a layout transpose, a BatchNorm reduction, a matrix product, or other fused
elementwise work. Ours is summed over XLA's two worker threads, which run one operation
each, sometimes two independent ones at once. PyTorch's step runs under torch.profiler,
whose times are each operator's wall time, its intra-op threads included.
"""
import collections
import glob
import os
import re
import tempfile

DUMP = tempfile.mkdtemp(prefix='ijckd_profile_')
os.environ['XLA_FLAGS'] = f'{os.environ.get("XLA_FLAGS", "")} --xla_dump_to={DUMP} --xla_dump_hlo_as_text'
import jax
import torch
from jax.profiler import ProfileData

import step as bench  # bench/step.py, beside this file
from ijckd_jax.training import steps

STEPS = 3


def hlo_operations(module_text):
    """{operation name: its defining line} of an optimized HLO module, fused computations included."""
    return {match.group(1): line for line in module_text.splitlines()
            if (match := re.match(r'\s+(?:ROOT )?%(\S+) = ', line))}


def classify(name, operations, computations):
    line = operations.get(name, '')
    called = re.search(r'calls=%(\S+?)[,\s]', line)
    body = computations.get(called.group(1), '') if called else line
    if 'convolution(' in body or 'convolution(' in line:
        if 'conv_general_dilated' not in line:
            return 'convolution, kernel gradient'  # XLA's rewrite leaves these without metadata
        return 'convolution, input gradient' if 'transpose(jvp' in line else 'convolution, forward'
    if name.startswith('transpose') or 'transpose(' in body.split('ROOT')[-1][:200]:
        return 'layout transposes (and the elementwise work fused into them)'
    if 'reduce_sum' in line:
        return 'reductions (BatchNorm statistics)'
    if 'dot_general' in line or ' dot(' in body:
        return 'matrix products'
    return 'other (BatchNorm, ReLU, residual adds, optimizer)'


def profile_ours(experiment, inputs):
    state = experiment.state
    for _ in range(STEPS):
        state, metrics = steps.train(state, experiment.teacher_variables, tuple(inputs), experiment.spec)
    jax.block_until_ready(metrics)
    trace = os.path.join(DUMP, 'trace')
    jax.profiler.start_trace(trace)
    for _ in range(STEPS):
        state, metrics = steps.train(state, experiment.teacher_variables, tuple(inputs), experiment.spec)
    jax.block_until_ready(metrics)
    jax.profiler.stop_trace()
    module = max(glob.glob(os.path.join(DUMP, '*jit_train_step*after_optimizations.txt')), key=os.path.getmtime)
    text = open(module).read()
    operations = hlo_operations(text)
    computations = dict(re.findall(r'^%(\S+) (.*?)^}', text, re.S | re.M))
    totals = collections.Counter()
    profile = ProfileData.from_file(glob.glob(os.path.join(trace, '**', '*.xplane.pb'), recursive=True)[0])
    for plane in profile.planes:
        for line in plane.lines:
            if 'Eigen' not in line.name:
                continue
            for event in line.events:
                if event.name in operations:
                    totals[classify(event.name, operations, computations)] += event.duration_ns / 1e6 / STEPS
    return totals


def profile_pytorch(torch_step, images, labels):
    for _ in range(STEPS):
        torch_step(images, labels)
    with torch.profiler.profile() as profiler:
        for _ in range(STEPS):
            torch_step(images, labels)
    classes = {'mkldnn_convolution': 'convolution, forward',
               'convolution_backward': 'convolution backward (input and kernel gradients)',
               'native_batch_norm': 'BatchNorm', 'native_batch_norm_backward': 'BatchNorm'}
    totals = collections.Counter()
    for event in profiler.key_averages():
        name = event.key.removeprefix('aten::')
        totals[classes.get(name, 'other')] += event.self_cpu_time_total / 1e3 / STEPS
    return totals


def print_totals(title, totals):
    print(f'\n{title}: {sum(totals.values()):.0f} ms per step')
    print('| where | ms per step | share |\n| --- | --- | --- |')
    for name, milliseconds in totals.most_common():
        print(f'| {name} | {milliseconds:.0f} | {100 * milliseconds / sum(totals.values()):.0f} % |')


def main():
    arguments = bench.parse_arguments()
    config = bench.build_config(arguments)
    mesh = bench.Mesh()
    teacher_state, teacher_variables = bench.teacher_weights(config)
    experiment = bench.create_experiment(config, mesh, bench.STEPS_PER_EPOCH, teacher_variables)
    images, labels = bench.random_batch(config, arguments.batch)
    print(f'{arguments.pair}, {arguments.objective}, batch {arguments.batch}, {arguments.dtype}, '
          f'jax {jax.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads)')
    print_totals('Ours (XLA)', profile_ours(experiment, mesh.shard(images, labels)))
    print_totals('PyTorch', profile_pytorch(bench.TorchStep(config, teacher_state), torch.from_numpy(images),
                                            torch.from_numpy(labels).long()))


if __name__ == '__main__':
    main()
