"""DKD on ImageNet, a row of the paper's Table 5: the method with its source's ImageNet
setting (configs/common.py IMAGENET_SETTINGS), under configs/imagenet_ijckd.py's recipe.

    python main.py --config configs/imagenet_dkd.py:resnet34-resnet18 \
        --config.teacher.checkpoint=teachers/resnet34 --config.data.data_dir=DIR --workdir runs/imagenet_dkd_r34_r18

Variants: resnet34-resnet18, resnet50-MobileNetV1, each with protocol=paper|authors_code.
"""
from configs import imagenet_ijckd

VARIANTS = imagenet_ijckd.VARIANTS


def get_config(arg=None):
    return imagenet_ijckd.imagenet_config('dkd', arg)
