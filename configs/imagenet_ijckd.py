"""IJCKD on ImageNet (the paper's §4.4 and Table 5): torchvision teachers, the 1×1-3×3-1×1
connector.

    python tools/convert_torch_weights.py resnet34-b627a593.pth --arch resnet34 --out teachers/resnet34
    python main.py --config configs/imagenet_ijckd.py:resnet34-resnet18 \
        --config.teacher.checkpoint=teachers/resnet34 --config.data.data_dir=DIR --workdir runs/imagenet_r34_r18

protocol=paper (the default) is §4.4 as printed: the loss CE + MSE(logits) ("the
cross-entropy loss and the softmax regression loss as we did for CIFAR-100"), SGD with
momentum 0.9 (Nesterov, "the same momentum parameter as ... CIFAR-100"), weight decay 1e-4,
batch 512, learning rate 0.2 divided by 10 at epochs 30, 60 and 90, 120 epochs, for both pairs.

protocol=authors_code is the authors' train_imagenet_distillation.py with its
config/imagenet/*.yaml: the loss CE + MSE(logits) + MSE(features), all weights 1; SGD with
momentum 0.9 without Nesterov, weight decay 1e-4, learning rate ÷10 at epochs 30, 60, 90;
r34_r18.yaml batch 256, learning rate 0.1, 120 epochs; r50_mv1.yaml batch 512, learning rate
0.2, 100 epochs.

Variants: resnet34-resnet18, resnet50-MobileNetV1, each with protocol=paper|authors_code and
the settings of configs/cifar_ijckd.py.
"""
from configs.common import IMAGENET, distillation_config, imagenet_settings, parse_variant, pop_protocol

VARIANTS = ('resnet34-resnet18', 'resnet50-MobileNetV1')
PAPER = dict(batch=512, learning_rate=0.2, epochs=120, nesterov=True, feature_matching=0.0)
AUTHORS_CODE = {  # config/imagenet/r34_r18.yaml and r50_mv1.yaml
    'resnet34-resnet18': dict(batch=256, learning_rate=0.1, epochs=120, nesterov=False,
                              feature_matching=1.0),
    'resnet50-MobileNetV1': dict(batch=512, learning_rate=0.2, epochs=100, nesterov=False,
                                 feature_matching=1.0),
}
PROTOCOLS = ('paper', 'authors_code')


def training_recipe(protocol, pair):
    """The batch, learning rate, epochs, Nesterov and feature-matching weight of `protocol`."""
    if protocol == 'paper':
        return PAPER
    if pair not in AUTHORS_CODE:
        raise ValueError(f"protocol=authors_code has recipes for {', '.join(AUTHORS_CODE)} only, "
                         f"not {pair}; use protocol=paper.")
    return AUTHORS_CODE[pair]


def get_config(arg=None):
    return imagenet_config('ijckd', arg)


def imagenet_config(objective, arg=None):
    """`objective` on an ImageNet pair under the protocol's recipe (configs/imagenet_table.py
    trains every method of its table under it); IJCKD with its 1×1-3×3-1×1 connector and the
    recipe's feature-matching weight, the others with their own defaults."""
    teacher, student, options = parse_variant(arg, VARIANTS[0])
    recipe = training_recipe(pop_protocol(options, PROTOCOLS), f'{teacher}-{student}')
    if objective == 'ijckd':
        options = {'connector': '1x1-3x3-1x1', 'beta_fm': recipe['feature_matching'], **options}
    options = {**imagenet_settings(objective, f'{teacher}-{student}'), **options}
    config = distillation_config(objective, teacher, student, options, data=IMAGENET)
    config.optimizer.update(dict(learning_rate=recipe['learning_rate'], nesterov=recipe['nesterov'],
                                 weight_decay=1e-4, decay_epochs=(30, 60, 90)))
    config.num_epochs = recipe['epochs']
    config.global_batch_size = recipe['batch']
    config.eval_batch_size = 500
    return config
