"""Each method of the paper's Table 5 on ImageNet, one row of METHODS each:
`configs/imagenet.py:METHOD,teacher-student[,protocol=paper|authors_code]`, the method with its
source's ImageNet setting (configs/common.py IMAGENET_SETTINGS) under configs/imagenet_ijckd.py's
recipe, as configs/imagenet_table.py trains them all in one run.

    python main.py --config configs/imagenet.py:at,resnet34-resnet18 \
        --config.teacher.checkpoint=teachers/resnet34 --config.data.data_dir=DIR --workdir runs/imagenet_at_r34_r18

VARIANTS: AT, WSLD and DKD, the rows whose sources set other ImageNet settings, on Table 5's
pairs; IJCKD's are configs/imagenet_ijckd.py's.
"""
from configs import imagenet_ijckd
from configs.common import split_method

# The methods of Table 5 this project implements (not CRD, which needs the split on the devices),
# and SimKD.
METHODS = ('kd', 'at', 'wsld', 'dkd', 'srrl', 'simkd', 'ijckd')
VARIANTS = tuple(f'{method},{pair}' for method in ('at', 'wsld', 'dkd') for pair in imagenet_ijckd.VARIANTS)


def get_config(arg='ijckd'):
    method, variant = split_method(arg, METHODS, 'configs/imagenet.py', 'at,resnet34-resnet18')
    return imagenet_ijckd.imagenet_config(method, variant)
