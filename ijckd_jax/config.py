"""Building blocks of the experiment configs in configs/, and their validation.

A config file's `get_config(arg)` takes a variant string such as
'resnet32x4-resnet8x4,connector=1x1-3x3-1x1,alpha_ce=0.2': the teacher-student pair, then
settings of the connector or the objective.
"""
import os

import ml_collections

from ijckd_jax.connectors import check_connector_name
from ijckd_jax.models import check_model_name
from ijckd_jax.objectives import get_objective, resolve_weights

CIFAR100 = dict(dataset='cifar100', in_memory=True, num_classes=100, image_size=32, train_split='train',
                eval_split='test', mean=(0.5071, 0.4867, 0.4408), std=(0.2675, 0.2565, 0.2761))
IMAGENET = dict(dataset='imagenet2012', in_memory=False, num_classes=1000, image_size=224, train_split='train',
                eval_split='validation', mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
# The paper §4.1: learning rate 0.01 for these students, 0.05 for all others.
LOW_LEARNING_RATE_STUDENTS = ('MobileNetV2', 'ShuffleV1', 'ShuffleV2')


def base_config(data=CIFAR100):
    """Every field a run reads, with the CIFAR-100 protocol of the paper §4.1 as defaults."""
    config = ml_collections.ConfigDict()
    config.seed = 0
    # on_device: an in-memory training split that fits is held on the devices, and each
    # step's batch is drawn, cropped and flipped inside the jitted step (device_data.py).
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
    config.eval_batch_size = 500
    config.steps_per_epoch = -1  # -1: the whole training split each epoch
    config.dtype = 'float32'     # or 'bfloat16': bfloat16 compute, float32 parameters
    config.log_every_steps = 100
    config.checkpoints_to_keep = 3
    # Multi-host: True calls jax.distributed.initialize(), which detects SLURM, Open MPI and
    # cloud TPU clusters; elsewhere also set the coordinator, the process count and the index.
    config.distributed = False
    config.coordinator_address = ''  # host:port of process 0
    config.num_processes = 0
    config.process_id = -1
    return config


def parse_variant(arg, default_pair):
    """'teacher-student,key=value,...' → (teacher, student, {key: value}) with numbers parsed."""
    pair, *settings = (arg or default_pair).split(',')
    if pair.count('-') != 1:
        raise ValueError(f"A variant starts with 'teacher-student', e.g. '{default_pair}'; got '{pair}'.")
    teacher, student = pair.split('-')
    options = {}
    for setting in settings:
        key, separator, value = setting.partition('=')
        if not separator:
            raise ValueError(f"Variant setting '{setting}' is not of the form key=value.")
        options[key] = parse_value(value)
    return teacher, student, options


def parse_value(text):
    """A number where the text is one ('0.2', '10'), else the text ('1x1-3x3-1x1', 'cosine')."""
    try:
        return float(text)
    except ValueError:
        return text


def distillation_config(objective, arg, default_pair='resnet32x4-resnet8x4', data=CIFAR100):
    """A distillation run: the variant's pair, the objective's settings, the connector."""
    teacher, student, options = parse_variant(arg, default_pair)
    check_model_name(teacher)
    check_model_name(student)
    config = base_config(data)
    config.teacher.model, config.student.model = teacher, student
    connector = options.pop('connector', '1x1')
    check_connector_name(connector)
    config.connector.kind = connector
    config.loss = ml_collections.ConfigDict(dict(name=objective, **resolve_weights(objective, options)))
    if student in LOW_LEARNING_RATE_STUDENTS:
        config.optimizer.learning_rate = 0.01
    return config


def validate_config(config, device_count):
    """Every check that can fail before any work: names, weights, batch sizes, the teacher."""
    check_model_name(config.student.model)
    objective = get_objective(config.loss.name)
    settings = {key: value for key, value in config.loss.items() if key != 'name'}
    resolve_weights(config.loss.name, settings)
    if objective.uses_teacher:
        check_model_name(config.teacher.model)
        if not config.teacher.checkpoint:
            raise ValueError(
                f"Objective '{config.loss.name}' needs a teacher but config.teacher.checkpoint is "
                'empty. Convert PyTorch weights with tools/convert_torch_weights.py or train one '
                'with configs/cifar_teacher.py, then pass --config.teacher.checkpoint=DIR.')
    if objective.uses_connector:
        check_connector_name(config.connector.kind)
    for name in ('global_batch_size', 'eval_batch_size'):
        if config[name] <= 0 or config[name] % device_count:
            raise ValueError(f'config.{name}={config[name]} must be a positive multiple of the '
                             f'{device_count} devices the batch is sharded over.')
    dataset = config.data.dataset
    if dataset.startswith(('/', '.', '~')) and not os.path.isdir(dataset):
        raise ValueError(f"config.data.dataset='{dataset}' is a path but not a directory. Give an "
                         'image folder with train/ and test/ class folders, or a tfds name such '
                         "as 'cifar100'.")
    if config.dtype not in ('float32', 'bfloat16'):
        raise ValueError(f"config.dtype must be 'float32' or 'bfloat16', got '{config.dtype}'.")


# Table 1's CIFAR-100 teacher→student pairs.
TABLE1_PAIRS = (
    'resnet56-resnet20', 'resnet110-resnet32', 'resnet32x4-resnet8x4', 'wrn_40_2-wrn_16_2',
    'wrn_40_2-wrn_40_1', 'vgg13-vgg8', 'vgg13-MobileNetV2', 'ResNet50-MobileNetV2', 'ResNet50-vgg8',
    'resnet32x4-ShuffleV1', 'resnet32x4-ShuffleV2', 'wrn_40_2-ShuffleV1',
)
TABLE2_CONNECTOR_VARIANTS = tuple(f'{pair},connector={connector}'
                                  for pair in ('resnet32x4-resnet8x4', 'wrn_40_2-wrn_40_1')
                                  for connector in ('1x1', '1x1-1x1', '1x1-3x3-1x1'))


def describe_unknown_fields(config, paths):
    """For each dotted path that `config` lacks, the group it fails in and that group's fields."""
    problems = []
    for path in paths:
        node, walked = config, ['config']
        for name in path.split('.'):
            if not isinstance(node, ml_collections.ConfigDict):
                problems.append(f"--config.{path}: {'.'.join(walked)} is a value, not a group.")
                break
            if name not in node:
                problems.append(f"--config.{path}: {'.'.join(walked)} has no field '{name}'; "
                                f"its fields: {', '.join(node.keys())}.")
                break
            node = node[name]
            walked.append(name)
    return ' '.join(problems)
