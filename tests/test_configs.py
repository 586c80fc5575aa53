"""Every config variant of the paper builds, and its student, connector and teacher fit together."""
import functools
import glob
import importlib.util
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from ijckd_jax.config import validate_config
from ijckd_jax.errors import DataUnavailable
from ijckd_jax.distillation import build_distiller, forward, init_trainable
from ijckd_jax.objectives import Examples, get_objective, loss_overrides, resolve_settings
from ijckd_jax.training.layout import is_table, rows_of, validate

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The config files main.py takes; configs/common.py and __init__.py are what they share.
CONFIG_FILES = sorted(path for path in glob.glob(os.path.join(REPOSITORY, 'configs', '*.py'))
                      if os.path.basename(path) not in ('__init__.py', 'common.py'))


def load(path):
    specification = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(specification)
    specification.loader.exec_module(module)
    return module


VARIANTS = [(os.path.basename(path), variant) for path in CONFIG_FILES
            for variant in load(path).VARIANTS]


@pytest.mark.quick
def test_the_papers_experiments_are_all_variants():
    names = {name: [variant for file, variant in VARIANTS if file == name] for name, _ in VARIANTS}
    assert len(names['cifar_ijckd.py']) == 12 + 6 + 8 + 6  # Tables 1, 2, 3, 4
    methods = {}  # configs/cifar.py's variants of each method: METHOD,PAIR[,...]
    for variant in names['cifar.py']:
        method, _, pair = variant.partition(',')
        methods.setdefault(method, []).append(pair)
    pairs = methods['kd']  # Table 1's pairs: every method at once, and Tables 2-4's rows on each
    assert len(pairs) == 12 and len(methods['simkd']) == 12 + 6  # Tables 1, 2
    assert len(methods['ce_teacher_classifier']) == 4             # Table 6
    assert len(methods['ijckd_joint']) == 2                       # Table 7
    for method in ('fitnet', 'at', 'vid', 'rkd', 'pkt', 'ofd', 'crd', 'wsld', 'dkd', 'srrl'):  # Table 1's rows
        assert methods[method] == pairs
    assert names['cifar_ijckd.py'][:12] == pairs
    assert names['imagenet_ijckd.py'] == ['resnet34-resnet18', 'resnet50-MobileNetV1']  # Table 5
    assert names['cifar_table.py'] == pairs + [f'{pair},rows={rows}' for rows in ('table2', 'table3', 'table4')
                                               for pair in pairs]
    assert names['imagenet_table.py'] == names['imagenet_ijckd.py']  # Table 5's pairs
    # Table 5's other rows (CRD needs the split on the devices)
    assert names['imagenet.py'] == [f'{method},{pair}' for method in ('at', 'wsld', 'dkd')
                                    for pair in names['imagenet_ijckd.py']]


@functools.cache
def teacher_shapes(teacher, image_size):
    """The teacher's variables and outputs on a batch of 2, as shapes: traced once per teacher
    model, which serves many variants."""
    images = jax.ShapeDtypeStruct((2, image_size, image_size, 3), jnp.float32)
    output, variables = jax.eval_shape(lambda x: teacher.init_with_output(jax.random.key(0), x, train=False),
                                       images)
    return variables, output


@functools.cache
def output_shapes(distiller, image_size, examples):
    """The shapes of everything `forward` returns for `distiller`'s modules, on a batch of the
    first 2 of `examples` training examples: traced once per distinct set of modules (the
    paper's variants share most), checked for every variant. The teacher's output is given, as
    a comparison table gives it, so that each teacher is traced once."""
    images = jax.ShapeDtypeStruct((2, image_size, image_size, 3), jnp.float32)
    variables = jax.eval_shape(lambda x: init_trainable(distiller, jax.random.key(0), x), images)
    teacher_variables, teacher_output = ({}, None) if distiller.teacher is None else teacher_shapes(
        distiller.teacher, image_size)
    batch = Examples(jnp.arange(2), jnp.zeros(examples, jnp.int32), jax.random.key(0))
    outputs, _ = jax.eval_shape(lambda v, t, o, x: forward(distiller, v, t, x, train=True, teacher_output=o,
                                                           epoch=jnp.float32(1), examples=batch),
                                variables, teacher_variables, teacher_output, images)
    return outputs


def placeholder_teacher(directory, config):
    """A saved model's model.json naming the config's teacher: what validation reads."""
    directory.mkdir(exist_ok=True)
    (directory / 'model.json').write_text(json.dumps({'model': config.teacher.model,
                                                      'num_classes': config.data.num_classes}))
    return str(directory)


@pytest.mark.parametrize('file, variant', VARIANTS)
def test_variant_builds_and_shapes_agree(file, variant, tmp_path):
    """Each variant validates and its modules' shapes fit; a comparison table's, each of its methods'."""
    config = load(os.path.join(REPOSITORY, 'configs', file)).get_config(variant)
    if is_table(config):
        config.teacher.checkpoint = placeholder_teacher(tmp_path / 'teacher', config)
        validate(config, device_count=1)
        for method_config in rows_of(config).values():
            check_shapes(method_config)
        return
    if get_objective(config.loss.name).uses_teacher:
        config.teacher.checkpoint = placeholder_teacher(tmp_path / 'teacher', config)
    validate_config(config, device_count=1)
    check_shapes(config)


# The objectives that read only the logits ([batch, classes]) and the pooled features ([batch,
# width], compared within each network's batch: RKD's distances, PKT's similarities): what they
# see has the same form on every pair, so their shapes are checked on the first pair a process
# meets. The others (connectors, heads, AT's maps) are checked on every pair.
PAIR_FREE = ('ce', 'kd', 'wsld', 'dkd', 'rkd', 'pkt')


CHECKED = set()


def check_shapes(config):
    """check_traced_shapes once per process for each distinct key (tracing is the cost): the
    paper's config files and the comparison table share most."""
    pair = () if config.loss.name in PAIR_FREE else (config.student.model, config.teacher.model,
                                                     config.connector.kind, config.connector.factor)
    key = (config.loss.name, repr(sorted(loss_overrides(config.loss).items())), pair, config.data.num_classes,
           config.data.image_size)
    if key not in CHECKED:
        check_traced_shapes(config)
        CHECKED.add(key)


def check_traced_shapes(config):
    """The student's logits, the connector's features against the teacher's, and the loss, as
    the objective needs: a method's head (FitNet's hint layer, VID's stages) fits the pair."""
    objective = get_objective(config.loss.name)
    examples = 50_000  # CIFAR-100's training split: CRD's memory bank
    distiller = build_distiller(config.loss.name, config.student.model, config.teacher.model or None,
                                config.data.num_classes, config.connector.kind, config.connector.factor,
                                config.data.image_size, settings=loss_overrides(config.loss), examples=examples)
    outputs = output_shapes(distiller, config.data.image_size, examples)
    settings = resolve_settings(config.loss.name, loss_overrides(config.loss))
    assert jax.eval_shape(lambda traced: objective.loss(traced, jnp.zeros(2, jnp.int32), settings)[0],
                          outputs).shape == ()
    classes = config.data.num_classes
    assert outputs.student_logits.shape == (2, classes)
    if objective.uses_connector:
        assert outputs.student_features.shape == outputs.teacher_features.shape
        assert outputs.teacher_classifier_logits.shape == (2, classes)
    if config.loss.name == 'ijckd_distance':
        assert outputs.student_classifier_weight.shape == outputs.teacher_classifier_weight.shape


@pytest.mark.quick
def test_unknown_variant_or_setting_names_the_valid_ones():
    ijckd = load(os.path.join(REPOSITORY, 'configs', 'cifar_ijckd.py'))
    with pytest.raises(ValueError, match="Unknown model 'resnet9'.*Valid models: resnet8, "):
        ijckd.get_config('resnet32x4-resnet9')
    with pytest.raises(ValueError, match=r"no setting \['alpah_ce'\]; its settings: alpha_ce, alpha_lm"):
        ijckd.get_config('resnet32x4-resnet8x4,alpah_ce=1')
    with pytest.raises(ValueError, match="Unknown connector '2x2'; valid connectors: 1x1, 1x1-1x1"):
        ijckd.get_config('resnet32x4-resnet8x4,connector=2x2')


def test_unknown_config_field_on_the_command_line_names_the_valid_fields(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(REPOSITORY, 'main.py'), '--config',
                             os.path.join(REPOSITORY, 'configs', 'cifar_ijckd.py'), '--workdir',
                             str(tmp_path / 'run'), '--config.loss.alpha_c=0.2'],
                            capture_output=True, text=True, cwd=REPOSITORY)
    assert result.returncode != 0
    assert ("--config.loss.alpha_c: config.loss has no field 'alpha_c'; its fields: alpha_ce, "
            "alpha_lm, beta_fm, logit_loss, name.") in result.stderr
    assert not (tmp_path / 'run').exists()


@pytest.mark.quick
def test_a_missing_image_folder_is_named_before_any_work(tmp_path):
    config = load(os.path.join(REPOSITORY, 'configs', 'cifar_teacher.py')).get_config('resnet8')
    config.data.dataset = str(tmp_path / 'cifar10_jpeg')
    with pytest.raises(ValueError, match='cifar10_jpeg\' is a path but not a directory'):
        validate_config(config, device_count=4)
    (tmp_path / 'cifar10_jpeg').mkdir()
    with pytest.raises(DataUnavailable, match='cifar10_jpeg has no train/ directory; the layout is'):
        validate_config(config, device_count=4)
    for split in ('train', 'test'):
        for name in ('cat', 'dog'):
            (tmp_path / 'cifar10_jpeg' / split / name).mkdir(parents=True)
    config.data.num_classes = 2
    validate_config(config, device_count=4)


@pytest.mark.quick
def test_batch_not_divisible_by_the_devices_is_refused():
    config = load(os.path.join(REPOSITORY, 'configs', 'cifar_teacher.py')).get_config('resnet8')
    config.global_batch_size = 6
    with pytest.raises(ValueError, match='global_batch_size=6 must be a multiple of the 4 devices'):
        validate_config(config, device_count=4)


@pytest.mark.quick
def test_learning_rates_follow_the_paper_unless_repdistillers_protocol_is_asked_for():
    """§4.1: 0.01 for ShuffleNet students, 0.05 for all others; RepDistiller also gives
    MobileNetV2 0.01."""
    cifar = load(os.path.join(REPOSITORY, 'configs', 'cifar.py'))
    teacher = load(os.path.join(REPOSITORY, 'configs', 'cifar_teacher.py'))
    rates = {variant: cifar.get_config(f'kd,{variant}').optimizer.learning_rate for variant in (
        'vgg13-MobileNetV2', 'vgg13-MobileNetV2,protocol=repdistiller', 'resnet32x4-ShuffleV1',
        'resnet32x4-ShuffleV2,protocol=repdistiller', 'resnet32x4-resnet8x4,protocol=repdistiller')}
    assert rates == {'vgg13-MobileNetV2': 0.05, 'vgg13-MobileNetV2,protocol=repdistiller': 0.01,
                     'resnet32x4-ShuffleV1': 0.01, 'resnet32x4-ShuffleV2,protocol=repdistiller': 0.01,
                     'resnet32x4-resnet8x4,protocol=repdistiller': 0.05}
    assert teacher.get_config('MobileNetV2').optimizer.learning_rate == 0.05
    assert teacher.get_config('MobileNetV2,protocol=repdistiller').optimizer.learning_rate == 0.01
    with pytest.raises(ValueError, match="Unknown protocol 'rep'; valid protocols: paper, repdistiller"):
        cifar.get_config('kd,vgg13-MobileNetV2,protocol=rep')


@pytest.mark.quick
def test_imagenet_follows_section_4_4_unless_the_authors_code_is_asked_for():
    imagenet = load(os.path.join(REPOSITORY, 'configs', 'imagenet_ijckd.py'))

    def recipe(variant):
        config = imagenet.get_config(variant)
        return (config.global_batch_size, config.optimizer.learning_rate, config.num_epochs,
                config.optimizer.nesterov, config.loss.beta_fm, config.connector.kind)

    assert recipe('resnet34-resnet18') == recipe('resnet50-MobileNetV1') == (
        512, 0.2, 120, True, 0.0, '1x1-3x3-1x1')
    assert recipe('resnet34-resnet18,protocol=authors_code') == (256, 0.1, 120, False, 1.0, '1x1-3x3-1x1')
    assert recipe('resnet50-MobileNetV1,protocol=authors_code') == (512, 0.2, 100, False, 1.0, '1x1-3x3-1x1')
    assert recipe('resnet50-MobileNetV1,protocol=authors_code,beta_fm=0')[4] == 0.0
    with pytest.raises(ValueError, match='protocol=authors_code has recipes for resnet34-resnet18, '
                                         'resnet50-MobileNetV1 only, not resnet50-resnet18'):
        imagenet.get_config('resnet50-resnet18,protocol=authors_code')
