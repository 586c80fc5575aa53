"""The paper's Table 5 comparison on ImageNet for one pair, trained as one run: the student
alone, KD, AT, WSLD, DKD, SRRL and IJCKD on the same batches, each streamed batch decoded once and the frozen
teacher's forward computed once for all of them.

    python main.py --config configs/imagenet_table.py:resnet34-resnet18 \
        --config.teacher.checkpoint=teachers/resnet34 --config.data.data_dir=DIR --workdir runs/imagenet_table

Every method trains under the recipe of configs/imagenet_ijckd.py's protocol (paper: batch
512, learning rate 0.2, 120 epochs), so that the table is one paired comparison; IJCKD with the
1×1-3×3-1×1 connector, AT, WSLD and DKD with their sources' ImageNet settings
(configs/common.py IMAGENET_SETTINGS), KD and SRRL with their own defaults (ijckd_jax/objectives/).
The other rows of the paper's Table 5 come from those methods' own papers and recipes
(docs/fidelity.md). Variants: Table 5's pairs, with
protocol=paper|authors_code; --config.methods may also name simkd.
"""
from configs import imagenet, imagenet_ijckd
from ijckd_jax.training.layout import table_config

VARIANTS = imagenet_ijckd.VARIANTS
METHODS = 'ce,kd,at,wsld,dkd,srrl,ijckd'  # Table 5's rows that this project implements (not CRD)


def get_config(arg=None):
    # 'ce', the student alone, and every row of configs/imagenet.py, under the same recipe.
    configs = {method: imagenet_ijckd.imagenet_config(method, arg) for method in ('ce', *imagenet.METHODS)}
    return table_config(configs, METHODS)
