"""The offline demo: IJCKD on real handwritten digits, on a CPU, in a few minutes.

    python main.py --config configs/demo.py --workdir runs/demo

Trains a resnet20 teacher on scikit-learn's digits, then a resnet8 student three ways
(cross-entropy alone, KD, IJCKD) as one comparison table (the teacher's forward computed once
per batch for all three, the same initialisation and batches for each), and prints their test
top-1 side by side and paired against KD; then ships the IJCKD student and the teacher
(workdir/shipped/) and prints their size and latency. The images are
the 1,797 8×8 digits that scikit-learn ships, upscaled to 16×16 RGB (CIFAR's 32×32 quadruples
the CPU time; --config.data.image_size=32 gives it), with a fixed 1,437 / 360 train/test
split. Everything else is the CIFAR protocol, shortened to 20 epochs.
"""
import ml_collections

from configs.common import DIGITS, base_config

VARIANTS = ('',)


def get_config(arg=None):
    if arg:
        raise ValueError(f"the demo has no variants, got '{arg}'; change a field with --config.FIELD=VALUE, "
                         'e.g. --config.demo.teacher=resnet14.')
    config = base_config(DIGITS)
    config.program = 'demo'
    # The student's methods, as a table names them: --config.demo.methods=ce,kd,dkd.
    config.demo = ml_collections.ConfigDict(dict(teacher='resnet20', student='resnet8', methods='ce,kd,ijckd'))
    config.num_epochs = 20
    config.optimizer.decay_epochs = (10, 15)
    config.eval_batch_size = 360
    config.log_every_steps = 22  # once per epoch: 1,437 images make 22 batches of 64
    return config
