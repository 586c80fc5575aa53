"""IJCKD on ImageNet (the paper's Table 5 and §4.4): torchvision teachers, the 1×1-3×3-1×1
connector, and the official code's loss CE + MSE(logits) + MSE(features), all weights 1.

    python tools/convert_torch_weights.py resnet34-b627a593.pth --arch resnet34 --out teachers/resnet34
    python main.py --config configs/imagenet_ijckd.py:resnet34-resnet18 \
        --config.teacher.checkpoint=teachers/resnet34 --config.data.data_dir=DIR --workdir runs/imagenet_r34_r18

SGD with momentum 0.9 (no Nesterov, as the official code), weight decay 1e-4, batch 512,
learning rate 0.2 divided by 10 at epochs 30, 60, 90, 120 epochs (paper §4.4).
Variants: resnet34-resnet18, resnet50-MobileNetV1.
"""
from ijckd_jax.config import IMAGENET, distillation_config

VARIANTS = ('resnet34-resnet18', 'resnet50-MobileNetV1')


def get_config(arg=None):
    teacher_student, *settings = (arg or VARIANTS[0]).split(',')
    defaults = ['connector=1x1-3x3-1x1', 'beta_fm=1']
    config = distillation_config('ijckd', ','.join([teacher_student, *defaults, *settings]),
                                 data=IMAGENET)
    config.optimizer.update(dict(learning_rate=0.2, nesterov=False, weight_decay=1e-4,
                                 decay_epochs=(30, 60, 90)))
    config.num_epochs = 120
    config.global_batch_size = 512
    config.eval_batch_size = 500
    return config
