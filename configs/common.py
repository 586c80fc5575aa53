"""What the config files share: the data sets, the paper's protocol, the variant parser and
the paper's experiment tables.

A variant is 'teacher-student' (or a model name for runs without a teacher) followed by
settings: 'resnet32x4-resnet8x4,connector=1x1-3x3-1x1,alpha_ce=0.2'. `protocol` picks whose
training recipe a run follows where sources disagree (docs/fidelity.md); `data` the data set
with its classes, image size and normalisation (DATA_SETS: 'resnet20-resnet8,data=digits').
"""
import difflib

import ml_collections

from ijckd_jax.connectors import check_connector_name
from ijckd_jax.data import digits
from ijckd_jax.models import check_model_name
from ijckd_jax.objectives import resolve_settings

CIFAR100 = dict(dataset='cifar100', in_memory=True, num_classes=100, image_size=32, train_split='train',
                eval_split='test', mean=(0.5071, 0.4867, 0.4408), std=(0.2675, 0.2565, 0.2761))
IMAGENET = dict(dataset='imagenet2012', in_memory=False, num_classes=1000, image_size=224, train_split='train',
                eval_split='validation', mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
# The statistics of CIFAR-10's training images (RepDistiller's and torchvision's usual values).
CIFAR10 = dict(CIFAR100, dataset='cifar10', num_classes=10, mean=(0.4914, 0.4822, 0.4465),
               std=(0.2470, 0.2435, 0.2616))
# scikit-learn's 8×8 digits upscaled to 16×16 RGB (the offline demo's data), normalised by
# their own statistics.
DIGITS = dict(dataset='digits', in_memory=True, num_classes=digits.CLASSES, image_size=16, train_split='train',
              eval_split='test', mean=(digits.MEAN,) * 3, std=(digits.STD,) * 3)
# The data blocks a variant's `data=NAME` setting picks: e.g. configs/cifar.py:kd,resnet20-resnet8,data=digits.
DATA_SETS = {'cifar100': CIFAR100, 'cifar10': CIFAR10, 'digits': DIGITS}

# The students that start at learning rate 0.01 instead of 0.05. The paper §4.1: "0.01 when
# ShuffleNet is the backbone ... 0.05 for all other backbones". RepDistiller's
# train_student.py (which SimKD and mdistiller copy) also gives 0.01 to MobileNetV2.
LOW_LEARNING_RATE_STUDENTS = {
    'paper': ('ShuffleV1', 'ShuffleV2'),
    'repdistiller': ('MobileNetV2', 'ShuffleV1', 'ShuffleV2'),
}

# Table 1's CIFAR-100 teacher→student pairs.
TABLE1_PAIRS = (
    'resnet56-resnet20', 'resnet110-resnet32', 'resnet32x4-resnet8x4', 'wrn_40_2-wrn_16_2',
    'wrn_40_2-wrn_40_1', 'vgg13-vgg8', 'vgg13-MobileNetV2', 'ResNet50-MobileNetV2', 'ResNet50-vgg8',
    'resnet32x4-ShuffleV1', 'resnet32x4-ShuffleV2', 'wrn_40_2-ShuffleV1',
)
# The settings the methods' sources give other than their modules' defaults (which are the
# sources' CIFAR-100 settings): per CIFAR-100 pair, on ImageNet, and per ImageNet pair.
CIFAR_PAIR_SETTINGS = {
    # mdistiller's configs/cifar100/dkd/*.yaml that set another BETA than cfg.py's 8.0 (the
    # others, res32x4_res8x4, res32x4_shuv1, res32x4_shuv2, res50_mv2 and wrn40_2_shuv1, keep it;
    # mdistiller has no yaml for ResNet50-vgg8, which keeps it too).
    'dkd': {'resnet56-resnet20': {'beta': 2.0},    # res56_res20.yaml
            'resnet110-resnet32': {'beta': 2.0},   # res110_res32.yaml
            'wrn_40_2-wrn_16_2': {'beta': 6.0},    # wrn40_2_wrn_16_2.yaml
            'wrn_40_2-wrn_40_1': {'beta': 6.0},    # wrn40_2_wrn_40_1.yaml
            'vgg13-vgg8': {'beta': 6.0},           # vgg13_vgg8.yaml
            'vgg13-MobileNetV2': {'beta': 6.0}},   # vgg13_mv2.yaml
}
IMAGENET_SETTINGS = {
    # mdistiller's configs/imagenet/r34_r18/at.yaml and r50_mv1/at.yaml set no AT section, so
    # cfg.py's defaults apply (CFG.AT.P 2, CE_WEIGHT 1.0, FEAT_WEIGHT 1000.0), no KD term: the
    # CIFAR-100 defaults, stated so that the ImageNet run's source is explicit.
    'at': {'ce_weight': 1.0, 'kd_weight': 0.0, 'beta': 1000.0, 'p': 2.0},
    # mdistiller's configs/imagenet/r34_r18/dkd.yaml: CE_WEIGHT 1.0, BETA 0.5, T 1.0, WARMUP 1;
    # ALPHA keeps cfg.py's 1.0.
    'dkd': {'ce_weight': 1.0, 'alpha': 1.0, 'beta': 0.5, 'temperature': 1.0, 'warmup': 1.0},
    # mdistiller's configs/imagenet/r50_mv1/ofd.yaml: FEAT_WEIGHT 0.0001, the rest cfg.py's
    # (mdistiller has no OFD config for ResNet34 → ResNet18).
    'ofd': {'ce_weight': 1.0, 'feat_weight': 0.0001, 'kernel_size': 1},
    # The WSLD authors' knowledge_distiller.py lines 40-41 (self.T = 2, self.alpha = 2.5).
    'wsld': {'temperature': 2.0, 'alpha': 2.5},
}
IMAGENET_PAIR_SETTINGS = {
    'dkd': {'resnet50-MobileNetV1': {'beta': 2.0}},  # mdistiller's configs/imagenet/r50_mv1/dkd.yaml
}
TABLE2_CONNECTOR_VARIANTS = tuple(f'{pair},connector={connector}'
                                  for pair in ('resnet32x4-resnet8x4', 'wrn_40_2-wrn_40_1')
                                  for connector in ('1x1', '1x1-1x1', '1x1-3x3-1x1'))


def base_config(data=CIFAR100):
    """Every field a run reads, with the CIFAR-100 protocol of the paper §4.1 as defaults."""
    config = ml_collections.ConfigDict()
    config.program = 'train'  # what main.py runs: 'train' one run, 'demo' the offline demo
    config.seed = 0
    # Several seeds, e.g. (0, 1, 2, 3, 4), trained together in one process, one step vmapped
    # over them (the split on the devices, shared); each seed's run in workdir/seed_{seed}.
    config.seeds = ()
    # How config.seeds step together: vmapped in one step ('vmap'), one after another in it
    # ('in_turn'), or 'auto': vmapped on accelerators, in turn on a CPU, where that measured
    # faster (bench/RESULTS.md); a comparison table defaults to 'auto'.
    config.seeds_vectorized = 'vmap'
    # on_device: an in-memory training split that fits is held on the devices, and each
    # step's batch is drawn, cropped and flipped inside the jitted step (ijckd_jax/data/device.py).
    config.data = ml_collections.ConfigDict(dict(data, data_dir='', download=False, on_device=True))
    config.student = ml_collections.ConfigDict(dict(model='resnet8x4'))
    config.teacher = ml_collections.ConfigDict(dict(model='', checkpoint=''))
    config.loss = ml_collections.ConfigDict(dict(name='ce'))
    config.connector = ml_collections.ConfigDict(dict(kind='1x1', factor=2))
    config.optimizer = ml_collections.ConfigDict(dict(
        learning_rate=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4,
        decay_epochs=(150, 180, 210), decay_factor=0.1))
    config.num_epochs = 240
    config.global_batch_size = 64
    config.eval_batch_size = 500  # rounded up to a multiple of the devices; the padding is masked
    config.steps_per_epoch = -1  # -1: the whole training split each epoch
    # With the training split on the devices, this many steps run in one dispatch (a scan),
    # the same steps: on a GPU, where a small step waits for its launch, more is faster.
    config.steps_per_dispatch = 1
    config.dtype = 'float32'     # or 'bfloat16': bfloat16 compute, float32 parameters
    # float32 matrix products and convolutions: 'default' is XLA's choice, which is TF32 on
    # Ampere and later NVIDIA GPUs; 'float32' computes them in full float32 (slower there).
    config.matmul_precision = 'default'
    # XLA's persistent compilation cache (main.py only): a run compiled before starts without
    # compiling. '' turns it off.
    config.compilation_cache = '~/.cache/ijckd_jax/xla'
    config.log_every_steps = 100
    config.checkpoints_to_keep = 3
    # Multi-host: True calls jax.distributed.initialize(), which detects SLURM, Open MPI and
    # cloud TPU clusters; elsewhere also set the coordinator, the process count and the index.
    config.distributed = False
    config.coordinator_address = ''  # host:port of process 0
    config.num_processes = 0
    config.process_id = -1
    return config


def parse_value(text):
    """A number where the text is one ('0.2', '10'), else the text ('1x1-3x3-1x1', 'cosine')."""
    try:
        return float(text)
    except ValueError:
        return text


def parse_settings(arg):
    """'head,key=value,...' → (head, {key: value}) with numbers parsed."""
    head, *settings = arg.split(',')
    options = {}
    for setting in settings:
        key, separator, value = setting.partition('=')
        if not separator:
            raise ValueError(f"Variant setting '{setting}' is not of the form key=value.")
        options[key] = parse_value(value)
    return head, options


def split_method(arg, methods, file, example):
    """'METHOD,rest' → (METHOD, rest or None), METHOD checked against `methods` (the rows of
    `file`)."""
    method, _, variant = arg.partition(',')
    if method not in methods:
        close = difflib.get_close_matches(method, methods, n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ''
        raise ValueError(f"Unknown method '{method}'.{hint} A variant of {file} starts with one of "
                         f"{', '.join(methods)}, e.g. '{example}'.")
    return method, variant or None


def parse_variant(arg, default_pair):
    """'teacher-student,key=value,...' → (teacher, student, {key: value}), the names checked."""
    pair, options = parse_settings(arg or default_pair)
    if pair.count('-') != 1:
        raise ValueError(f"A variant starts with 'teacher-student', e.g. '{default_pair}'; got '{pair}'.")
    teacher, student = pair.split('-')
    check_model_name(teacher)
    check_model_name(student)
    return teacher, student, options


def pop_protocol(options, protocols):
    """The variant's `protocol` setting (default 'paper'), checked against `protocols`."""
    protocol = options.pop('protocol', 'paper')
    if protocol not in protocols:
        raise ValueError(f"Unknown protocol '{protocol}'; valid protocols: {', '.join(protocols)}.")
    return protocol


def pop_data(options):
    """The variant's `data` setting (default 'cifar100'): the data block it names, which sets the
    data set, its classes, image size and normalisation together."""
    name = options.pop('data', 'cifar100')
    if name not in DATA_SETS:
        raise ValueError(f"Unknown data '{name}'; a variant's data= names one of {', '.join(DATA_SETS)} (an "
                         'image folder or another tfds data set: --config.data.dataset=... with its '
                         '--config.data.num_classes, image_size, mean and std).')
    return DATA_SETS[name]


def cifar_learning_rate(model, protocol):
    """The initial learning rate of a CIFAR student (or teacher) under `protocol`."""
    return 0.01 if model in LOW_LEARNING_RATE_STUDENTS[protocol] else 0.05


def distillation_config(objective, teacher, student, options, data=CIFAR100):
    """A distillation run of `teacher` → `student`: the objective's settings from `options`,
    and the connector (`options['connector']`, 1×1 by default)."""
    config = base_config(data)
    config.teacher.model, config.student.model = teacher, student
    options = dict(options)
    config.connector.kind = options.pop('connector', '1x1')
    check_connector_name(config.connector.kind)
    config.loss = ml_collections.ConfigDict(dict(name=objective, **resolve_settings(objective, options)))
    return config


def imagenet_settings(objective, pair):
    """The objective's ImageNet settings for 'teacher-student' where its source gives others
    than its CIFAR-100 defaults (IMAGENET_SETTINGS and IMAGENET_PAIR_SETTINGS), else none."""
    return {**IMAGENET_SETTINGS.get(objective, {}), **IMAGENET_PAIR_SETTINGS.get(objective, {}).get(pair, {})}


def cifar_distillation_config(objective, arg, default_pair='resnet32x4-resnet8x4'):
    """A CIFAR-100 distillation run from its variant string, at the protocol's learning rate,
    with the objective's settings for the pair where its source gives some (CIFAR_PAIR_SETTINGS),
    which the variant's options override."""
    teacher, student, options = parse_variant(arg, default_pair)
    protocol = pop_protocol(options, LOW_LEARNING_RATE_STUDENTS)
    data = pop_data(options)
    options = {**CIFAR_PAIR_SETTINGS.get(objective, {}).get(f'{teacher}-{student}', {}), **options}
    config = distillation_config(objective, teacher, student, options, data)
    config.optimizer.learning_rate = cifar_learning_rate(student, protocol)
    return config

