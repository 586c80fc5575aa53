"""Times our jitted train step against a PyTorch implementation of the very same step.

    python bench/step.py --pair resnet32x4-resnet8x4 --objective ijckd --batch 64
    python bench/step.py --pair resnet32x4-resnet8x4 --objective METHOD --batch 64  # fitnet at vid rkd pkt ofd ...
    python bench/step.py --pair resnet8x4 --objective ce --batch 64          # teacher training
    python bench/step.py --pair resnet32x4-resnet8x4 --objective ijckd --eval
    python bench/step.py --pair resnet32x4-resnet8x4 --data-on-device     # batches drawn in the step
    python bench/step.py --input --batch 64          # the input alone: host pipeline vs on the device
    python bench/step.py --data-on-device --seeds 5  # 5 seeds in one step vs 5 PyTorch steps
    python bench/step.py --table ce,kd,srrl,simkd,ijckd  # a comparison table's step vs its methods' own

Same architectures (ijckd_jax.torch_models), same loss (the paper's PyTorch algorithms; for
the other methods their sources' code, tests/torch_distillers.py, combined as
RepDistiller's helper/loops.py or mdistiller's OFD and DKD do), same update (torch.optim.SGD,
Nesterov, weight decay, over the student and the method's trainable modules). CRD trains
from the split held on the devices (its memory bank is indexed by example positions), so
--objective crd implies --data-on-device; its PyTorch step draws its contrast indices on the
host, as RepDistiller's CIFAR100InstanceSample does, inside the timed step. After warm-up
the two steps run in alternation, so that both see the same machine state; the median of
each is reported with images/s and the ratio ours / PyTorch (below 1 means we are faster).
Compile time is reported separately. --table compares ours with ours instead: the table's one
step for all its methods against each method's own step, in alternation. Benchmarks are not
tests: nothing asserts a time.
"""
import argparse
import functools
import importlib.util
import os
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
from ijckd_jax.objectives import get_objective, loss_overrides, resolve_settings
from ijckd_jax.training.layout import rows_of
from ijckd_jax.training import steps
from ijckd_jax.training.experiment import create_experiment, vectorize_seeds
from ijckd_jax.training.mesh import Mesh
from ijckd_jax.training.steps import SplitBatch


def load_transcriptions():
    """tests/torch_distillers.py, the PyTorch transcriptions of the other methods' losses: they
    live with the tests that check ours against them, outside the installed package, so they are
    loaded from their file (nothing edits sys.path: tests/test_install.py)."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tests', 'torch_distillers.py')
    specification = importlib.util.spec_from_file_location('torch_distillers', path)
    module = importlib.util.module_from_spec(specification)
    specification.loader.exec_module(module)
    return module


distillers = load_transcriptions()

SUPPORTED = ('ce', 'kd', 'srrl', 'simkd', 'ijckd', 'fitnet', 'at', 'vid', 'rkd', 'pkt', 'ofd', 'crd', 'wsld', 'dkd')
# The methods RepDistiller trains (helper/loops.py train_distill): γ·CE + α·KD + β·their loss,
# read from the networks' feature lists (feat[:-1], the maps) and pooled features (feat[-1]).
REPDISTILLER = ('fitnet', 'at', 'vid', 'rkd', 'pkt', 'crd')
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
    methods = arguments.table.split(',') if arguments.table else [arguments.objective]
    if not arguments.input and any(get_objective(method.strip()).uses_examples for method in methods):
        arguments.data_on_device = True  # CRD's memory bank needs each example's position in the split
    return arguments


def build_config(arguments):
    teacher, _, student = arguments.pair.rpartition('-')
    # With the objective's per-pair settings where its source has them (DKD's β), as its config does.
    config = cifar_distillation_config(arguments.objective, f'{teacher or student}-{student}')
    if arguments.objective == 'ce':
        config.teacher.model = ''
    config.data.image_size, config.dtype = arguments.image_size, arguments.dtype
    config.global_batch_size = config.eval_batch_size = arguments.batch
    config.data.num_classes = 1000 if arguments.image_size > 64 else 100
    return config


class TorchStep:
    """The same step in PyTorch: teacher in eval mode under no_grad, the paper's algorithms, and
    the other methods as their sources train them. `split_labels`, for CRD: the labels of the
    training split its memory bank has a row for (CIFAR100InstanceSample's)."""

    def __init__(self, config, teacher_state, split_labels=None):
        torch.manual_seed(0)
        classes = config.data.num_classes
        self.objective = config.loss.name
        self.settings = resolve_settings(self.objective, loss_overrides(config.loss))
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
        if self.objective in REPDISTILLER:
            trainable += self.repdistiller_modules(config, split_labels)
        if self.objective == 'ofd':
            trainable += self.ofd_modules(config)
        self.optimizer = torch.optim.SGD(trainable, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
        self.mean = torch.tensor(config.data.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(config.data.std).view(1, 3, 1, 1)
        self.bfloat16 = config.dtype == 'bfloat16'

    def repdistiller_modules(self, config, split_labels):
        """The method's criterion and trainable modules, built as RepDistiller's train_student.py
        does (lines 170-226: from the feature shapes of both networks in eval mode on a batch of
        2); returns the parameters it adds to the SGD's (its trainable_list)."""
        size, settings = config.data.image_size, self.settings
        with torch.no_grad():
            probe = torch.zeros(2, 3, size, size)
            feat_s = self.feat(self.student.eval(), self.student_classifier, probe)[0]
            feat_t = self.feat(self.teacher, self.teacher_classifier, probe)[0]
        self.student.train()
        self.distill_kl = distillers.DistillKL(settings['temperature'])
        if self.objective == 'fitnet':
            hint = int(settings['hint_layer'])
            self.criterion = distillers.ConvReg(feat_s[hint].shape, feat_t[hint].shape).train()  # regress_s
            return list(self.criterion.parameters())
        if self.objective == 'vid':
            self.criterion = torch.nn.ModuleList([
                distillers.VIDLoss(s.shape[1], t.shape[1], t.shape[1], settings['init_pred_var'], settings['epsilon'])
                for s, t in zip(feat_s[1:-1], feat_t[1:-1])]).train()
            return list(self.criterion.parameters())
        if self.objective == 'crd':
            self.criterion = distillers.CRDLoss(
                feat_s[-1].shape[1], feat_t[-1].shape[1], int(settings['feature_dimension']),
                int(settings['negatives']), settings['temperature_nce'], settings['momentum'],
                len(split_labels)).train()
            self.cls_negative = distillers.class_negatives(split_labels, config.data.num_classes)
            self.draw_seconds = []
            return list(self.criterion.embed_s.parameters()) + list(self.criterion.embed_t.parameters())
        self.criterion = {'at': lambda: distillers.Attention(settings['p']),
                          'rkd': lambda: distillers.RKDLoss(settings['distance_weight'], settings['angle_weight']),
                          'pkt': distillers.PKT}[self.objective]()
        return []

    def ofd_modules(self, config):
        """mdistiller's OFD.init_ofd_modules: a ConnectorConvBN from the stage channels after the
        stem of both networks (aligned from the end), the margins from the teacher's BatchNorms
        before ReLU; returns the connectors' parameters (OFD.get_learnable_parameters)."""
        size = config.data.image_size
        with torch.no_grad():
            probe = torch.zeros(2, 3, size, size)
            student_maps = self.student.eval().preact_feature_list(probe)
            teacher_maps = self.teacher.preact_feature_list(probe)
            for name, model, maps in (('student', self.student, student_maps), ('teacher', self.teacher, teacher_maps)):
                # One forward gives both the maps and the logits only where the classifier pools
                # the ReLU of the last pre-activation map (the CIFAR ResNets and WRNs).
                if not torch.equal(F.relu(maps[-1]), model.feature_map(probe)):
                    raise SystemExit(f'bench/step.py --objective ofd: the {name} {config[name].model} does not pool '
                                     'the ReLU of its last pre-activation map; choose a CIFAR ResNet or WRN pair.')
        self.student.train()
        student_channels, teacher_channels = distillers.align_list([m.shape[1] for m in student_maps[1:]],
                                                                   [m.shape[1] for m in teacher_maps[1:]])
        self.criterion = distillers.ConnectorConvBN(student_channels, teacher_channels,
                                                    int(self.settings['kernel_size'])).train()
        self.margins = distillers.margins_of(self.teacher.bn_before_relu())
        return list(self.criterion.parameters())

    def ofd_loss(self, images, labels):
        """OFD.forward_train (lines 129-140): CE, and feat_weight × ofd_loss on preact_feats[1:];
        the teacher under no_grad in eval mode, as ours (mdistiller's is in train mode)."""
        x = self.normalize(images)
        maps = self.student.preact_feature_list(x)
        logits = self.student_classifier(F.adaptive_avg_pool2d(F.relu(maps[-1]), 1).flatten(1))
        with torch.no_grad():
            teacher_maps = self.teacher.preact_feature_list(x)
        settings = self.settings
        return (settings['ce_weight'] * F.cross_entropy(logits, labels)
                + settings['feat_weight'] * distillers.torch_ofd_loss(self.criterion, self.margins, maps[1:],
                                                                      teacher_maps[1:]))

    @staticmethod
    def stages_and_map(model, x):
        """feature_list(x), RepDistiller's feat[:-1], and feature_map(x), the map the classifier
        pools, from one forward pass: every model of ijckd_jax.torch_models computes its
        feature_map from its feature_list, so the call is recorded there."""
        recorded = []
        original = type(model).feature_list

        def feature_list(x):
            recorded.append(original(model, x))
            return recorded[-1]

        model.feature_list = feature_list
        try:
            feature_map = model.feature_map(x)
        finally:
            del model.feature_list
        return recorded[0], feature_map

    def feat(self, model, classifier, x):
        """RepDistiller's model(x, is_feat=True): (feat, logits), feat the maps then the pooled
        features."""
        stages, feature_map = self.stages_and_map(model, x)
        pooled = F.adaptive_avg_pool2d(feature_map, 1).flatten(1)
        return [*stages, pooled], classifier(pooled)

    @staticmethod
    def feature_channels(model, config):
        """Channels of the map the model's classifier pools; the model's mode is kept."""
        size, training = config.data.image_size, model.training
        with torch.no_grad():
            channels = model.eval().feature_map(torch.zeros(1, 3, size, size)).shape[1]
        model.train(training)
        return channels

    def __call__(self, images, labels, index=None):
        """One step; `index`, for CRD, the batch's positions in the split."""
        contrast_idx = None
        if self.objective == 'crd':  # CIFAR100InstanceSample's draw, per example, on the host
            start = time.perf_counter()
            contrast_idx = torch.from_numpy(np.stack([
                distillers.sample_contrast_indices(position, target, self.cls_negative, self.criterion.contrast.K)
                for position, target in zip(index.tolist(), labels.tolist())])).long()
            self.draw_seconds.append(time.perf_counter() - start)
        # bfloat16: PyTorch's mixed precision, as ours (bfloat16 compute, float32 parameters).
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=self.bfloat16):
            if self.objective in REPDISTILLER:
                loss = self.repdistiller_loss(images, labels, index, contrast_idx)
            elif self.objective == 'ofd':
                loss = self.ofd_loss(images, labels)
            else:
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

    def repdistiller_loss(self, images, labels, index, contrast_idx):
        """helper/loops.py train_distill (lines 114-169): the student's feat and logits, the
        teacher's under no_grad, γ·CE + α·KD + β·the method's loss."""
        x = self.normalize(images)
        feat_s, logit_s = self.feat(self.student, self.student_classifier, x)
        with torch.no_grad():
            feat_t, logit_t = self.feat(self.teacher, self.teacher_classifier, x)
        loss_cls = F.cross_entropy(logit_s, labels)
        loss_div = self.distill_kl(logit_s, logit_t)
        if self.objective == 'fitnet':
            hint = int(self.settings['hint_layer'])
            loss_kd = F.mse_loss(self.criterion(feat_s[hint]), feat_t[hint])  # HintLoss: nn.MSELoss
        elif self.objective == 'crd':
            loss_kd = self.criterion(feat_s[-1], feat_t[-1], index, contrast_idx)
        elif self.objective == 'at':
            loss_kd = sum(self.criterion(feat_s[1:-1], feat_t[1:-1]))
        elif self.objective == 'vid':
            loss_kd = sum(c(f_s, f_t) for f_s, f_t, c in zip(feat_s[1:-1], feat_t[1:-1], self.criterion))
        else:  # rkd, pkt
            loss_kd = self.criterion(feat_s[-1], feat_t[-1])
        settings = self.settings
        return settings['ce_weight'] * loss_cls + settings['kd_weight'] * loss_div + settings['beta'] * loss_kd

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
        settings = self.settings
        if self.objective == 'dkd':
            # mdistiller's DKD.forward_train at epoch 1, as our step's first epoch: the warm-up
            # factor min(1 / 20, 1) is a scalar, so the step costs the same at any epoch.
            return sum(distillers.dkd_forward_train(logits, teacher_logits, labels, 1, settings).values())
        if self.objective == 'wsld':
            return sum(distillers.wsld_forward(logits, teacher_logits, labels, settings['temperature'],
                                               settings['alpha']))
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


def compare(arguments, ours, theirs, name=None):
    """Warm-up, then the two in alternation; prints the medians and the ratio. `name`, called
    after the timing, gives the step column."""
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
    step = name() if name else ('eval' if arguments.eval else arguments.objective)
    print(f'| {arguments.pair}{seeds} | {step} | {arguments.batch} '
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
                                   EXAMPLES if arguments.data_on_device else None)
    size = config.data.image_size
    images, labels = random_batch(config, arguments.batch)
    host_split, index = None, None
    if arguments.data_on_device:
        host_split = cifar_sized_split(size, config.data.num_classes)
        if get_objective(config.loss.name).uses_examples:
            # PyTorch's batch: examples of the split, so that its contrast indices are drawn
            # from other classes than their labels (ours draws its batch in the step).
            index = np.random.default_rng(1).choice(EXAMPLES, arguments.batch, replace=False)
            images, labels = host_split.images[index], host_split.labels[index]
    global_images, global_labels = mesh.shard(images, labels)
    batch = (global_images, global_labels)
    if arguments.data_on_device:
        split = place_split(host_split, mesh)
        batch = SplitBatch(*split, epoch_order(split, 0, mesh, experiment.seeds), experiment.seeds)
    torch_step = TorchStep(config, teacher_state, None if host_split is None else host_split.labels)
    torch_images, torch_labels = torch.from_numpy(images), torch.from_numpy(labels).long()
    torch_index = None if index is None else torch.from_numpy(index).long()
    state = [experiment.state]

    if arguments.eval:
        mask = mesh.shard(np.ones(arguments.batch, bool))[0]

        def ours():
            jax.block_until_ready(steps.evaluate(state[0], experiment.teacher_variables,
                                                 (global_images, global_labels, mask, None), experiment.spec))

        def theirs():
            torch_step.evaluate(torch_images)
    else:
        def ours():
            state[0], metrics = steps.train(state[0], experiment.teacher_variables, batch, experiment.spec)
            jax.block_until_ready(metrics)

        def theirs():
            for _ in range(arguments.seeds):
                torch_step(torch_images, torch_labels, torch_index)
    compare(arguments, ours, theirs, functools.partial(step_name, arguments, config, torch_step))


def step_name(arguments, config, torch_step):
    """The table's step column: the objective, and what each side's step includes where that
    is not the same batch in both."""
    if arguments.eval:
        return 'eval'
    settings = torch_step.settings
    if config.loss.name == 'crd':
        draw = statistics.median(torch_step.draw_seconds) * 1000
        return (f"crd (ours: batch and {int(settings['negatives']):,} negatives drawn in the step from a "
                f'{EXAMPLES:,}-example split on the device; PyTorch: a fixed batch of that split, its contrast '
                f'indices drawn by numpy in its step, {draw:.0f} ms of it)')
    if config.loss.name == 'dkd':
        return f"dkd, epoch 1 (warm-up factor 1/{settings['warmup']:g}) on both sides"
    return config.loss.name


def benchmark_table(arguments):
    """The table's step against the sum of its methods' own steps, in alternation in this
    process, and what XLA allocates for each (arguments, outputs and temporaries)."""
    teacher, _, student = arguments.pair.rpartition('-')
    table = cifar_table.get_config(f'{teacher}-{student}')
    table.methods, table.seeds_vectorized, table.dtype = arguments.table, arguments.seeds_vectorized, arguments.dtype
    table.global_batch_size = table.eval_batch_size = arguments.batch
    table.seeds = tuple(range(arguments.seeds)) if arguments.seeds > 1 else ()
    configs = rows_of(table)
    for config in configs.values():
        config.seeds, config.seeds_vectorized = table.seeds, table.seeds_vectorized
    mesh = Mesh()
    _, teacher_variables = teacher_weights(table)
    examples = EXAMPLES if arguments.data_on_device else None
    experiments = {'table': create_experiment(table, mesh, STEPS_PER_EPOCH, teacher_variables, examples)}
    for method, config in configs.items():
        uses_teacher = get_objective(config.loss.name).uses_teacher
        experiments[method] = create_experiment(config, mesh, STEPS_PER_EPOCH,
                                                teacher_variables if uses_teacher else {}, examples)
    images, labels = random_batch(table, arguments.batch)
    batch = tuple(mesh.shard(images, labels))
    if arguments.data_on_device:
        split = place_split(cifar_sized_split(table.data.image_size, table.data.num_classes), mesh)
        batch = SplitBatch(*split, epoch_order(split, 0, mesh, experiments['table'].seeds), experiments['table'].seeds)
    states = {name: experiment.state for name, experiment in experiments.items()}
    compiled, compile_seconds = {}, {}
    for name, experiment in experiments.items():
        start = time.perf_counter()
        compiled[name] = steps.train.lower(states[name], experiment.teacher_variables, batch,
                                           experiment.spec).compile()
        compile_seconds[name] = time.perf_counter() - start

    def step(name):
        states[name], metrics = compiled[name](states[name], experiments[name].teacher_variables, batch)
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
        print(f'| {name} | {medians[name] * 1000:.1f} ms | {compile_seconds[name]:.1f} s '
              f'| {step_memory(compiled[name]):.0f} MiB |')
    print(f'| sum of separate steps | {separate * 1000:.1f} ms | | |')
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
