r"""Trains and evaluates what a config describes (the installed command `ijckd-train` is the same):

    python main.py --config configs/demo.py --workdir runs/demo
    python main.py --config configs/cifar_ijckd.py:resnet32x4-resnet8x4 --workdir runs/ijckd \
        --config.teacher.checkpoint=teachers/resnet32x4

Any field of the config can be set with --config.FIELD=VALUE; the same --workdir resumes.
"""
from ijckd_jax.cli.train import run

if __name__ == '__main__':
    run()
