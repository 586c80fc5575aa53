"""Times our jitted train step against a PyTorch implementation of the very same step.

    python bench/step.py --pair resnet32x4-resnet8x4 --objective ijckd --batch 64
    python bench/step.py --pair resnet8x4 --objective ce --batch 64          # teacher training
    python bench/step.py --pair resnet32x4-resnet8x4 --objective ijckd --eval
    python bench/step.py --pair resnet32x4-resnet8x4 --data-on-device     # batches drawn in the step
    python bench/step.py --input --batch 64          # the input alone: host pipeline vs on the device
    python bench/step.py --data-on-device --seeds 5  # 5 seeds in one step vs 5 PyTorch steps
    python bench/step.py --table ce,kd,srrl,simkd,ijckd  # a comparison table's step vs its methods' own

Same architectures (ijckd_jax.torch_models), same loss (the paper's PyTorch algorithms),
same update (torch.optim.SGD, Nesterov, weight decay). After warm-up the two steps run in
alternation, so that both see the same machine state; the median of each is reported with
images/s and the ratio ours / PyTorch (below 1 means we are faster). Compile time is
reported separately. --table compares ours with ours instead: the table's one step for all
its methods against each method's own step, in alternation. Benchmarks are not tests:
nothing asserts a time.
"""
import argparse
import functools
import resource
import statistics
import time

import jax
import numpy as np
import torch
import torch.nn.functional as F

from configs import cifar_table
from configs.common import cifar_distillation_config
from ijckd_jax.convert import convert_state_dict
from ijckd_jax.data.device import draw_batch, epoch_order, place_split
from ijckd_jax.data.pipeline import train_batches
from ijckd_jax.data.split import Split
from ijckd_jax.torch_models import create_torch_model, torch_classifier
from ijckd_jax.objectives import get_objective
from ijckd_jax.table import method_configs
from ijckd_jax.training.experiment import create_experiment, create_table_experiment, vectorize_seeds
from ijckd_jax.training.mesh import Mesh

SUPPORTED = ('ce', 'kd', 'srrl', 'simkd', 'ijckd')
EXAMPLES = 50_000  # CIFAR's training split
STEPS_PER_EPOCH = 781


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--pair', default='resnet32x4-resnet8x4', help="'teacher-student', or one model for ce")
    parser.add_argument('--objective', default='ijckd', choices=SUPPORTED)
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--image-size', type=int, default=32)
    parser.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16'))
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--eval', action='store_true', help='time the evaluation step instead')
    parser.add_argument('--input', action='store_true',
                        help='time the input alone: the host pipeline and the on-device draw')
    parser.add_argument('--data-on-device', action='store_true',
                        help='our step draws its batch from a CIFAR-sized split held on the devices')
    parser.add_argument('--seeds', type=int, default=1,
                        help='with --data-on-device: our step trains this many seeds at once (vmapped), '
                             'PyTorch runs its step once per seed')
    parser.add_argument('--table', default='',
                        help="methods, e.g. 'ce,kd,srrl,simkd,ijckd': a comparison table's step for all of them "
                             "(configs/cifar_table.py) against each method's own step")
    parser.add_argument('--seeds-vectorized', default='auto', choices=('auto', 'vmap', 'in_turn'),
                        help="with --table and --seeds: the table's seeds vmapped or in turn (config.seeds_vectorized)")
    arguments = parser.parse_args()
    if arguments.seeds > 1 and not arguments.data_on_device:
        parser.error('--seeds trains seeds together from the split on the devices: add --data-on-device')
    return arguments


def build_config(arguments):
    teacher, _, student = arguments.pair.rpartition('-')
    config = cifar_distillation_config(arguments.objective, f'{teacher or student}-{student}')
    if arguments.objective == 'ce':
        config.teacher.model = ''
    config.data.image_size, config.dtype = arguments.image_size, arguments.dtype
    config.global_batch_size = config.eval_batch_size = arguments.batch
    config.data.num_classes = 1000 if arguments.image_size > 64 else 100
    return config


class TorchStep:
    """The same step in PyTorch: teacher in eval mode under no_grad, the paper's algorithms."""

    def __init__(self, config, teacher_state):
        torch.manual_seed(0)
        classes = config.data.num_classes
        self.objective = config.loss.name
        self.student = create_torch_model(config.student.model, classes).train()
        self.student_classifier = torch_classifier(config.student.model, self.student)
        self.teacher = (create_torch_model(config.teacher.model, classes).eval()
                        if config.teacher.model else None)
        if self.teacher is not None:
            self.teacher.load_state_dict(teacher_state)
            self.teacher_classifier = torch_classifier(config.teacher.model, self.teacher)
        trainable = list(self.student.parameters())
        self.connector = None
        if self.objective in ('srrl', 'simkd', 'ijckd'):
            student_channels = self.feature_channels(self.student, config)
            teacher_channels = self.feature_channels(self.teacher, config)
            self.connector = torch.nn.Sequential(
                torch.nn.Conv2d(student_channels, teacher_channels, 1, bias=False),
                torch.nn.BatchNorm2d(teacher_channels), torch.nn.ReLU()).train()
            trainable += list(self.connector.parameters())
        self.optimizer = torch.optim.SGD(trainable, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
        self.mean = torch.tensor(config.data.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(config.data.std).view(1, 3, 1, 1)
        self.bfloat16 = config.dtype == 'bfloat16'

    @staticmethod
    def feature_channels(model, config):
        """Channels of the map the model's classifier pools; the model's mode is kept."""
        size, training = config.data.image_size, model.training
        with torch.no_grad():
            channels = model.eval().feature_map(torch.zeros(1, 3, size, size)).shape[1]
        model.train(training)
        return channels

    def __call__(self, images, labels):
        # bfloat16: PyTorch's mixed precision, as ours (bfloat16 compute, float32 parameters).
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=self.bfloat16):
            loss = self.forward(images, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss

    def forward(self, images, labels):
        x = self.normalize(images)
        features = self.student.feature_map(x)
        logits = self.student_classifier(F.adaptive_avg_pool2d(features, 1).flatten(1))
        if self.teacher is None:
            return F.cross_entropy(logits, labels)
        with torch.no_grad():
            teacher_features = self.teacher.feature_map(x)
            teacher_logits = self.teacher_classifier(F.adaptive_avg_pool2d(teacher_features, 1).flatten(1))
        return self.loss(features, logits, teacher_features, teacher_logits, labels)

    def normalize(self, images):
        """uint8 NHWC → normalised float NCHW, as our step's normalize does on the device."""
        return (images.permute(0, 3, 1, 2).float() / 255 - self.mean) / self.std

    @torch.no_grad()
    def evaluate(self, images):
        """What our eval step computes: the evaluation classifier's logits and, with a
        teacher, its logits too (for the error bound's terms)."""
        for module in (self.student, self.connector):
            if module is not None:
                module.eval()
        x = self.normalize(images)
        features = self.student.feature_map(x)
        if self.connector is not None:
            features = self.connector(features)
        classifier = self.teacher_classifier if self.connector is not None else self.student_classifier
        logits = classifier(F.adaptive_avg_pool2d(features, 1).flatten(1))
        if self.teacher is not None:
            self.teacher(x).argmax(1)
        return logits.argmax(1)

    def loss(self, features, logits, teacher_features, teacher_logits, labels):
        if self.objective == 'kd':
            divergence = F.kl_div(F.log_softmax(logits / 4, 1), F.softmax(teacher_logits / 4, 1),
                                  reduction='batchmean')
            return 0.1 * F.cross_entropy(logits, labels) + 0.9 * 16 * divergence
        aligned = self.connector(features)
        reclassified = self.teacher_classifier(F.adaptive_avg_pool2d(aligned, 1).flatten(1))
        if self.objective == 'simkd':
            return F.mse_loss(aligned, teacher_features)
        if self.objective == 'srrl':
            return (F.cross_entropy(logits, labels) + F.mse_loss(reclassified, teacher_logits)
                    + F.mse_loss(aligned, teacher_features))
        return F.cross_entropy(reclassified, labels) + F.mse_loss(reclassified, teacher_logits)


def teacher_weights(config):
    """A freshly initialised PyTorch teacher's state dict and the same weights converted."""
    if not config.teacher.model:
        return None, {}
    state = create_torch_model(config.teacher.model, config.data.num_classes).state_dict()
    return state, convert_state_dict({k: v.numpy() for k, v in state.items()}, config.teacher.model)


def random_batch(config, batch):
    """uint8 images and int32 labels, the same for both frameworks."""
    rng = np.random.default_rng(0)
    size = config.data.image_size
    images = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    return images, rng.integers(0, config.data.num_classes, batch).astype(np.int32)


def time_call(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def compare(arguments, ours, theirs):
    """Warm-up, then the two in alternation; prints the medians and the ratio."""
    compile_seconds = time_call(ours)  # the first call traces and compiles
    theirs()
    for _ in range(2):
        ours(), theirs()
    our_times, their_times = [], []
    for _ in range(arguments.repeats):
        our_times.append(time_call(ours))
        their_times.append(time_call(theirs))
    ours_median, theirs_median = statistics.median(our_times), statistics.median(their_times)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    images = arguments.batch * arguments.seeds
    seeds = f' ×{arguments.seeds} seeds' if arguments.seeds > 1 else ''
    print(f'| {arguments.pair}{seeds} | {"eval" if arguments.eval else arguments.objective} | {arguments.batch} '
          f'| {arguments.dtype} | {ours_median * 1000:.0f} ms ({images / ours_median:.0f} img/s) '
          f'| {theirs_median * 1000:.0f} ms ({images / theirs_median:.0f} img/s) '
          f'| {ours_median / theirs_median:.2f} | {compile_seconds:.1f} s | {peak:.0f} MiB |')


def main():
    arguments = parse_arguments()
    print(f'jax {jax.__version__} on {jax.devices()[0].device_kind} ×{jax.device_count()}, '
          f'torch {torch.__version__} with {torch.get_num_threads()} threads')
    if arguments.table:
        return benchmark_table(arguments)
    print('| pair | step | batch | dtype | ours | PyTorch | ours / PyTorch | compile | peak RSS |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    if arguments.input:
        return benchmark_input(arguments)
    config = build_config(arguments)
    if arguments.seeds > 1:
        config.seeds = tuple(range(arguments.seeds))
    mesh = Mesh()
    teacher_state, teacher_variables = teacher_weights(config)
    experiment = create_experiment(config, mesh, STEPS_PER_EPOCH, teacher_variables,
                                   data_on_device=arguments.data_on_device)
    size = config.data.image_size
    images, labels = random_batch(config, arguments.batch)
    global_images, global_labels = mesh.shard(images, labels)
    inputs = (global_images, global_labels)
    if arguments.data_on_device:
        split = place_split(cifar_sized_split(size, config.data.num_classes), mesh)
        inputs = (*split, epoch_order(split, 0, mesh, experiment.seeds), experiment.seeds)
    torch_step = TorchStep(config, teacher_state)
    torch_images, torch_labels = torch.from_numpy(images), torch.from_numpy(labels).long()
    state = [experiment.state]

    if arguments.eval:
        mask = mesh.shard(np.ones(arguments.batch, bool))[0]

        def ours():
            jax.block_until_ready(experiment.eval_step(state[0], experiment.teacher_variables,
                                                       global_images, global_labels, mask))

        def theirs():
            torch_step.evaluate(torch_images)
    else:
        def ours():
            state[0], metrics = experiment.train_step(state[0], experiment.teacher_variables, *inputs)
            jax.block_until_ready(metrics)

        def theirs():
            for _ in range(arguments.seeds):
                torch_step(torch_images, torch_labels)
    compare(arguments, ours, theirs)


def benchmark_table(arguments):
    """The table's step against the sum of its methods' own steps, in alternation in this
    process, and what XLA allocates for each (arguments, outputs and temporaries)."""
    teacher, _, student = arguments.pair.rpartition('-')
    table = cifar_table.get_config(f'{teacher}-{student}')
    table.methods, table.seeds_vectorized, table.dtype = arguments.table, arguments.seeds_vectorized, arguments.dtype
    table.global_batch_size = table.eval_batch_size = arguments.batch
    table.seeds = tuple(range(arguments.seeds)) if arguments.seeds > 1 else ()
    configs = method_configs(table)
    for config in configs.values():
        config.seeds = table.seeds
    mesh = Mesh()
    _, teacher_variables = teacher_weights(table)
    experiments = {'table': create_table_experiment(table, configs, mesh, STEPS_PER_EPOCH, teacher_variables,
                                                    data_on_device=arguments.data_on_device)}
    for method, config in configs.items():
        uses_teacher = get_objective(config.loss.name).uses_teacher
        experiments[method] = create_experiment(config, mesh, STEPS_PER_EPOCH,
                                                teacher_variables if uses_teacher else {},
                                                data_on_device=arguments.data_on_device)
    images, labels = random_batch(table, arguments.batch)
    inputs = mesh.shard(images, labels)
    if arguments.data_on_device:
        split = place_split(cifar_sized_split(table.data.image_size, table.data.num_classes), mesh)
        inputs = (*split, epoch_order(split, 0, mesh, experiments['table'].seeds), experiments['table'].seeds)
    states = {name: experiment.state for name, experiment in experiments.items()}
    compiled, compile_seconds = {}, {}
    for name, experiment in experiments.items():
        start = time.perf_counter()
        compiled[name] = experiment.train_step.lower(states[name], experiment.teacher_variables, *inputs).compile()
        compile_seconds[name] = time.perf_counter() - start

    def step(name):
        states[name], metrics = compiled[name](states[name], experiments[name].teacher_variables, *inputs)
        jax.block_until_ready(metrics)

    for _ in range(2):
        for name in experiments:
            step(name)
    times = {name: [] for name in experiments}
    for _ in range(arguments.repeats):
        for name in experiments:
            times[name].append(time_call(functools.partial(step, name)))
    medians = {name: statistics.median(values) for name, values in times.items()}
    separate = sum(medians[method] for method in configs)
    mode = 'vmapped' if vectorize_seeds(table) else 'in turn'
    seeds = f' ×{arguments.seeds} seeds ({mode})' if arguments.seeds > 1 else ''
    print(f'| step of {arguments.pair}{seeds}, batch {arguments.batch} | median | compile | XLA memory |')
    print('| --- | --- | --- | --- |')
    for name in experiments:
        print(f'| {name} | {medians[name] * 1000:.0f} ms | {compile_seconds[name]:.1f} s '
              f'| {step_memory(compiled[name]):.0f} MiB |')
    print(f'| sum of separate steps | {separate * 1000:.0f} ms | | |')
    print(f'table / sum of separate steps: {medians["table"] / separate:.2f}')


def step_memory(compiled):
    """MiB XLA allocates for one compiled train step: arguments, outputs and temporaries."""
    analysis = compiled.memory_analysis()
    total = analysis.argument_size_in_bytes + analysis.output_size_in_bytes + analysis.temp_size_in_bytes
    return total / 2**20


def cifar_sized_split(size=32, classes=100):
    rng = np.random.default_rng(0)
    return Split(rng.integers(0, 256, (EXAMPLES, size, size, 3), dtype=np.uint8),
                 rng.integers(0, classes, EXAMPLES).astype(np.int32))


def benchmark_input(arguments):
    """Images/s each input path delivers to the devices from a CIFAR-sized split: the host
    pipeline (crop, flip, batch, transfer) and the on-device draw (gather, crop, flip)."""
    split, mesh = cifar_sized_split(), Mesh()
    steps = EXAMPLES // arguments.batch
    start = time.perf_counter()
    for images, labels in train_batches(split, arguments.batch, steps, seed=0, epoch=0, process_index=0):
        jax.block_until_ready(mesh.shard(images, labels))
    host = steps * arguments.batch / (time.perf_counter() - start)
    on_device = place_split(split, mesh)
    draw = jax.jit(functools.partial(draw_batch, mesh=mesh, steps_per_epoch=steps,
                                     global_batch=arguments.batch))
    order = epoch_order(on_device, 0, mesh, 0)
    jax.block_until_ready(draw(on_device, order, 0, 0))
    start = time.perf_counter()
    for step in range(steps):
        jax.block_until_ready(draw(on_device, order, step, 0))
    device = steps * arguments.batch / (time.perf_counter() - start)
    print(f'| input: host pipeline | one CIFAR epoch | {arguments.batch} | uint8 | {host:.0f} img/s '
          '| — | — | — | — |')
    print(f'| input: on the device | one CIFAR epoch | {arguments.batch} | uint8 | {device:.0f} img/s '
          '| — | — | — | — |')


if __name__ == '__main__':
    main()
