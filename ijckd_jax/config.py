"""Checks of a run's config and workdir, made before any work: a bad value is a ConfigError
naming the field, the value and the fix, printed by main.py as one line.

The configs themselves, their defaults and the paper's experiment tables live in configs/;
loading a config file and the command line's errors about it, in cli/config_file.py.
"""
import difflib
import functools
import json
import math
import os

from ijckd_jax.connectors import check_connector_name
from ijckd_jax.data import digits
from ijckd_jax.data.folders import check_class_count, check_same_classes, class_names, is_image_folder
from ijckd_jax.data.pipeline import in_memory, reads_with_tf_data
from ijckd_jax.data.tfds_source import check_download, class_count_and_image_size
from ijckd_jax.distillation import build_distiller
from ijckd_jax.errors import ConfigError, WorkdirError
from ijckd_jax.frozen_model import METADATA, training_data
from ijckd_jax.models import check_model_name
from ijckd_jax.objectives import get_objective, loss_overrides, resolve_settings
from ijckd_jax.runtime import MATMUL_PRECISIONS, tensorflow_installed

DTYPES = ('float32', 'bfloat16')
SMALLEST_IMAGE = 8  # pixels: the CIFAR networks pool an 8×8 map at 32 pixels, 2×2 at 8
# Integer fields and their smallest value.
INTEGERS = {'seed': 0, 'num_epochs': 1, 'global_batch_size': 1, 'eval_batch_size': 1,
            'log_every_steps': 1, 'checkpoints_to_keep': 1, 'num_processes': 0, 'process_id': -1,
            'steps_per_dispatch': 1,
            'data.num_classes': 2, 'data.image_size': SMALLEST_IMAGE, 'connector.factor': 1}
BOOLEANS = ('distributed', 'data.download', 'data.in_memory', 'data.on_device', 'optimizer.nesterov')


def field(config, path):
    """config.a.b for path 'a.b'."""
    value = config
    for name in path.split('.'):
        value = value[name]
    return value


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def refuse(path, value, problem):
    raise ConfigError(f'config.{path}={value!r} {problem}.')


def check_types_and_ranges(config):
    """Integers, booleans, the optimizer's numbers and the normalisation, each in its range."""
    for path, smallest in INTEGERS.items():
        value = field(config, path)
        if not isinstance(value, int) or isinstance(value, bool) or value < smallest:
            refuse(path, value, f'must be an integer ≥ {smallest}')
    for path in BOOLEANS:
        if not isinstance(field(config, path), bool):
            refuse(path, field(config, path), 'must be True or False')
    if config.steps_per_epoch != -1 and (not isinstance(config.steps_per_epoch, int)
                                         or config.steps_per_epoch < 1):
        refuse('steps_per_epoch', config.steps_per_epoch, 'must be -1 (the whole split) or an integer ≥ 1')
    optimizer = config.optimizer
    for name in ('learning_rate', 'decay_factor'):
        if not is_number(optimizer[name]) or optimizer[name] <= 0:
            refuse(f'optimizer.{name}', optimizer[name], 'must be a finite number > 0')
    if not is_number(optimizer.weight_decay) or optimizer.weight_decay < 0:
        refuse('optimizer.weight_decay', optimizer.weight_decay, 'must be a finite number ≥ 0')
    if not is_number(optimizer.momentum) or not 0 <= optimizer.momentum < 1:
        refuse('optimizer.momentum', optimizer.momentum, 'must be in [0, 1)')
    epochs = optimizer.decay_epochs
    if not all(isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0 for epoch in epochs):
        refuse('optimizer.decay_epochs', epochs, 'must be epochs: integers ≥ 0, e.g. (150, 180, 210)')
    for name, smallest in (('mean', -math.inf), ('std', 0)):
        values = config.data[name]
        if len(values) != 3 or not all(is_number(value) and value > smallest for value in values):
            bound = 'finite numbers > 0' if smallest == 0 else 'finite numbers'
            refuse(f'data.{name}', values, f'must be three {bound}, one per RGB channel')


def named(path, check, *arguments):
    """check(*arguments), its ValueError a ConfigError that names the field."""
    try:
        return check(*arguments)
    except ValueError as error:
        raise ConfigError(f'config.{path}: {error}') from None


def check_names(config):
    """The objective and its settings, the models, the connector, dtype and precision."""
    objective = named('loss.name', get_objective, config.loss.name)
    named('loss', resolve_settings, config.loss.name, loss_overrides(config.loss))
    named('student.model', check_model_name, config.student.model)
    if objective.uses_teacher:
        named('teacher.model', check_model_name, config.teacher.model)
    if objective.uses_connector:
        named('connector.kind', check_connector_name, config.connector.kind)
    if config.dtype not in DTYPES:
        refuse('dtype', config.dtype, f"must be one of {', '.join(DTYPES)}")
    if config.matmul_precision not in MATMUL_PRECISIONS:
        refuse('matmul_precision', config.matmul_precision, f"must be one of {', '.join(MATMUL_PRECISIONS)}")


def tfds_names():
    """The tfds data sets this installation knows, without importing TensorFlow."""
    from tensorflow_datasets.core import registered

    return registered.list_imported_builders()


def check_data(config):
    """The data set exists by its name or path, TensorFlow is here where tf.data reads it, and a
    tfds data set has config.data.num_classes classes."""
    dataset = config.data.dataset
    if not isinstance(dataset, str) or not dataset:
        refuse('data.dataset', dataset, "must name a data set: 'digits', an image folder or a tfds name")
    if dataset.startswith(('/', '.', '~')) and not os.path.isdir(dataset):
        raise ConfigError(f"config.data.dataset='{dataset}' is a path but not a directory. Give an "
                          'image folder with train/ and test/ class folders, or a tfds name such '
                          "as 'cifar100'.")
    if is_image_folder(dataset):
        check_same_classes(dataset, (config.data.train_split, config.data.eval_split))
    elif dataset == 'digits':
        check_digits(config.data)
    elif ':' not in dataset and '/' not in dataset and dataset not in tfds_names():
        close = difflib.get_close_matches(dataset, tfds_names(), n=1, cutoff=0.6)
        hint = f" Did you mean '{close[0]}'?" if close else ''
        raise ConfigError(f"config.data.dataset='{dataset}' is neither 'digits', an image folder nor "
                          f'a tfds data set.{hint}')
    if reads_with_tf_data(config.data) and not tensorflow_installed():
        raise ConfigError(f"config.data.dataset='{dataset}' is read with tf.data, which needs "
                          "TensorFlow: pip install tensorflow-cpu (or pip install -e '.[tensorflow]').")
    if not is_image_folder(dataset) and dataset != 'digits':  # a tfds data set, TensorFlow installed
        check_tfds_classes_and_size(config.data)
        if config.data.download:
            check_download(config.data)


# Where a run on the digits misses their data block: one setting of a CIFAR config's variant sets it whole.
DIGITS_FIX = ('add data=digits to a CIFAR config\'s variant (e.g. --config configs/cifar.py:kd,resnet20-resnet8,'
              'data=digits), which sets the digits\' classes, image size and normalisation together')


def check_digits(data):
    """The digits' splits, their 10 classes, an image size that upscales 8×8, and their own
    normalisation: a run that kept another data set's block would train without an error."""
    for name, split in zip(('train_split', 'eval_split'), digits.SPLITS):
        if data[name] not in digits.SPLITS:
            refuse(f'data.{name}', data[name], f"is not a split of the digits, which have 'train' and 'test'; "
                   f'pass --config.data.{name}={split}')
    if data.num_classes != digits.CLASSES:
        refuse('data.num_classes', data.num_classes, f'is not the digits\' {digits.CLASSES} classes: {DIGITS_FIX}, or '
               f'pass --config.data.num_classes={digits.CLASSES}')
    if data.image_size % 8:
        refuse('data.image_size', data.image_size, f'must be a multiple of 8 for the 8×8 digits: {DIGITS_FIX}')
    # The configs give the statistics to 4 decimals.
    if not all(abs(value - own) <= 5e-5 for values, own in ((data.mean, digits.MEAN), (data.std, digits.STD))
               for value in values):
        raise ConfigError(f'config.data.mean={tuple(data.mean)!r} and std={tuple(data.std)!r} are not the digits\' '
                          f'normalisation (mean {digits.MEAN}, std {digits.STD} in every channel): {DIGITS_FIX}.')


def check_tfds_classes_and_size(data):
    """config.data.num_classes is the tfds data set's class count (a classifier of another size
    would train on labels it cannot represent), and an in-memory data set's images are
    config.data.image_size pixels (the models are built for that size)."""
    count, size = class_count_and_image_size(data)
    if count is not None and count != data.num_classes:
        raise ConfigError(f"config.data.dataset='{data.dataset}' has {count} classes, but config.data.num_classes "
                          f'is {data.num_classes}; pass --config.data.num_classes={count}, or name the data set you '
                          f'mean with --config.data.dataset (with its classes, image size and normalisation; a '
                          "CIFAR config's variant sets them all with data=cifar10, cifar100 or digits).")
    if in_memory(data) and size is not None and size != data.image_size:
        raise ConfigError(f"config.data.dataset='{data.dataset}' has {size}×{size} images, but "
                          f'config.data.image_size is {data.image_size}; pass --config.data.image_size={size}.')


def check_teacher(config):
    """A teacher where the objective needs one, saved as the model and classes the config names,
    and trained on the data, image size and normalisation the config gives, where it says."""
    if not get_objective(config.loss.name).uses_teacher:
        return
    directory = config.teacher.checkpoint
    fix = ('Convert PyTorch weights with tools/convert_torch_weights.py or train a teacher with '
           'configs/cifar_teacher.py, then pass --config.teacher.checkpoint=DIR.')
    if not directory:
        raise ConfigError(f"Objective '{config.loss.name}' needs a teacher but config.teacher.checkpoint "
                          f'is empty. {fix}')
    metadata_path = os.path.join(directory, METADATA)
    if not os.path.isfile(metadata_path):
        exports = run_exports(directory)
        if exports:
            raise ConfigError(f"config.teacher.checkpoint='{directory}' is a training run's directory; the model it "
                              f"trained is its export: pass --config.teacher.checkpoint={exports[0]}"
                              f"{' (or ' + ', '.join(exports[1:4]) + ')' if exports[1:] else ''}.")
        raise ConfigError(f"config.teacher.checkpoint='{directory}' is not a saved model (no "
                          f'model.json there). {fix}')
    try:
        with open(metadata_path) as file:
            metadata = json.load(file)
        saved = (metadata['model'], int(metadata['num_classes']))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f'{metadata_path} cannot be read ({error}); convert or export the teacher again.') from None
    if is_image_folder(config.data.dataset):
        check_teacher_serves_folder(config, saved)
    data = training_data(directory, metadata)
    if data is not None:
        check_teacher_data(config, saved, data)
    if saved != (config.teacher.model, config.data.num_classes):
        data_fix = '' if saved[1] == config.data.num_classes else (
            f' and a data set of {saved[1]} classes (--config.data.dataset=... --config.data.num_classes={saved[1]}; '
            "a CIFAR config's variant sets both with data=cifar10, cifar100 or digits)")
        raise ConfigError(f"config.teacher.checkpoint='{directory}' holds {saved[0]} with {saved[1]} "
                          f'classes, but the config asks for {config.teacher.model} with '
                          f'{config.data.num_classes} classes; pass --config.teacher.model={saved[0]}'
                          f'{data_fix}, or another teacher.')


def run_exports(directory):
    """The exported models of a training run's directory, or of its seeds' runs: a teacher
    passed as the run that trained it rather than its export."""
    entries = os.listdir(directory) if os.path.isdir(directory) else []
    candidates = [os.path.join(directory, 'export')] + sorted(
        os.path.join(directory, entry, 'export') for entry in entries if entry.startswith('seed_'))
    return [path for path in candidates if os.path.isfile(os.path.join(path, METADATA))]


def check_teacher_data(config, saved, data):
    """A teacher trained by this project records its data: a run on other data, or at another
    image size or normalisation, would distil from a teacher that does not see what it learnt
    from (a resnet20 trained at 32 pixels scored 25% at 16)."""
    directory, (model, classes) = config.teacher.checkpoint, saved
    # An image folder is named by a path, relative to where each run started: its classes are
    # checked (check_teacher_serves_folder), not its name.
    if data['dataset'] != config.data.dataset and not is_image_folder(config.data.dataset):
        how = (f"add data={data['dataset']} to a CIFAR config's variant (e.g. --config configs/cifar.py:kd,"
               f"{model}-resnet8,data={data['dataset']}), which sets its classes, image size and normalisation"
               if data['dataset'] in ('cifar10', 'cifar100', 'digits') else
               f"pass --config.data.dataset={data['dataset']} --config.data.num_classes={classes} "
               f"--config.data.image_size={data['image_size']} and its mean and std")
        raise ConfigError(f"config.teacher.checkpoint='{directory}' holds {model} trained on {data['dataset']} "
                          f"({classes} classes, {data['image_size']} pixels), but the config trains on "
                          f"{config.data.dataset}: train the student on the teacher's data ({how}), or pass a "
                          f'teacher of {config.data.dataset}.')
    if data['image_size'] != config.data.image_size:
        raise ConfigError(f"config.teacher.checkpoint='{directory}' holds {model} trained at {data['image_size']} "
                          f'pixels, but config.data.image_size is {config.data.image_size}: the teacher would see '
                          f"images of another size; pass --config.data.image_size={data['image_size']}.")
    for name in ('mean', 'std'):
        # The configs give the statistics to 4 decimals.
        if not all(math.isclose(saved_value, value, abs_tol=5e-5)
                   for saved_value, value in zip(data[name], config.data[name])):
            raise ConfigError(f"config.teacher.checkpoint='{directory}' holds {model} trained with data.{name} "
                              f'{tuple(data[name])}, but config.data.{name} is {tuple(config.data[name])}: the teacher '
                              f"would see other inputs; pass --config.data.{name}=\"{tuple(data[name])}\".")


def check_teacher_serves_folder(config, saved):
    """A teacher serves an image folder only if it was trained on as many classes as the folder
    has: the folder fixes the count, so the fix is another teacher, not config.data.num_classes."""
    dataset, (model, classes) = config.data.dataset, saved
    count = len(class_names(dataset, config.data.train_split))
    if classes != count:
        raise ConfigError(f"config.teacher.checkpoint='{config.teacher.checkpoint}' holds {model} trained on "
                          f'{classes} classes, but the image folder {dataset} has {count}: this teacher cannot '
                          f'serve this data. Train a teacher on the folder (configs/cifar_teacher.py:{model} with '
                          f'--config.data.dataset={dataset} --config.data.num_classes={count}) and pass its '
                          f'export, or convert one with {count} classes.')


def check_folder_classes(config):
    """An image folder has config.data.num_classes class folders (folders.py's ValueError as a
    ConfigError, so that main.py prints it as one line)."""
    dataset = config.data.dataset
    if is_image_folder(dataset):
        try:
            check_class_count(dataset, class_names(dataset, config.data.train_split), config.data.num_classes)
        except ValueError as error:
            raise ConfigError(str(error)) from None


def check_batches(config, device_count):
    if config.global_batch_size % device_count:
        refuse('global_batch_size', config.global_batch_size,
               f'must be a multiple of the {device_count} devices the batch is sharded over')


SEEDS_VECTORIZED = ('auto', 'vmap', 'in_turn')


def check_seeds(config):
    """config.seeds: distinct integers ≥ 0, trained together only from a split on the devices,
    vmapped or in turn."""
    if config.seeds_vectorized not in SEEDS_VECTORIZED:
        refuse('seeds_vectorized', config.seeds_vectorized, f"must be one of {', '.join(SEEDS_VECTORIZED)}")
    seeds = config.seeds
    if not isinstance(seeds, (tuple, list)) or not all(
            isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 for seed in seeds):
        refuse('seeds', seeds, 'must be integers ≥ 0, e.g. --config.seeds=0,1,2')
    if len(set(seeds)) != len(seeds):
        refuse('seeds', seeds, 'repeats a seed; each seed is one run')
    if seeds and not (config.data.on_device and in_memory(config.data)):
        refuse('seeds', seeds, 'trains the seeds together from a training split held on the devices; '
               'set --config.data.on_device=True with an in-memory split (data.in_memory, or digits), '
               'or train each seed in its own run with --config.seed')


def check_examples(config):
    """An objective that indexes the training split (CRD's memory bank) trains from a split
    held on the devices, the one path whose batches carry each example's position."""
    if get_objective(config.loss.name).uses_examples and not (config.data.on_device and in_memory(config.data)):
        refuse('loss.name', config.loss.name, "keeps a memory bank indexed by each example's position in "
               'the training split, which only a split held on the devices gives; set '
               '--config.data.on_device=True with an in-memory split (data.in_memory, or digits)')


def check_head(config):
    """An objective's own trainable part fits the pair's maps (FitNet's hint layer, VID's and
    AT's stages): built from the models' shapes alone, before any data is read."""
    if get_objective(config.loss.name).head is not None:
        # Shapes only: the dtype does not change them, and any split size (CRD's bank) will do.
        named('loss', functools.partial(build_distiller, settings=loss_overrides(config.loss), examples=1),
              config.loss.name, config.student.model, config.teacher.model, config.data.num_classes,
              config.connector.kind, config.connector.factor, config.data.image_size)


def validate_config(config, device_count, teacher_trained=True):
    """Every check of the config that can fail before any work; teacher_trained=False leaves out
    the teacher's saved model, for the demo's students checked before their teacher trains. The
    teacher is checked before the folder's class count: a teacher of other classes than the
    folder's is the problem to name, not config.data.num_classes."""
    check_types_and_ranges(config)
    check_seeds(config)
    check_names(config)
    check_examples(config)
    check_head(config)
    check_batches(config, device_count)
    check_data(config)
    if teacher_trained:
        check_teacher(config)
    check_folder_classes(config)


def check_workdir_writable(workdir):
    """The workdir, or the nearest folder above it that exists, can be written."""
    path = os.path.abspath(workdir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise WorkdirError(f'--workdir {workdir} exists and is not a directory; pass a directory.')
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise WorkdirError(f'--workdir {workdir} cannot be created: {path} is a file; pass a directory.')
    if not os.access(path, os.W_OK | os.X_OK):
        raise WorkdirError(f'--workdir {workdir} cannot be written ({path} is read-only for this '
                           'user); pass a writable directory.')
