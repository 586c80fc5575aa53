"""Converts a PyTorch checkpoint of the zoo into a saved Flax model the trainer loads as a teacher.
(tools/convert_torch_weights.py is the same program.)

    ijckd-convert resnet32x4_vanilla/ckpt_epoch_240.pth \
        --arch resnet32x4 --out teachers/resnet32x4 --verify
    ijckd-convert chenyaofo:cifar100_resnet56 --out teachers/resnet56 --verify

Reads plain state dicts, {'model': state_dict} (RepDistiller, mdistiller, SimKD), keys with
DataParallel's 'module.' prefix, and torchvision's resnet18/34/50 state dicts. A published
teacher's name (ijckd-teachers lists them) is downloaded, checked and cached first. Nothing is
written unless every key and shape matches (and, with --verify, the logits agree); the --verify
figure is recorded in the output's model.json.
"""
import argparse
import os
import sys

from ijckd_jax import convert, teachers
from ijckd_jax.errors import RunError


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint', help="the PyTorch .pth/.pt file, or a published teacher's name "
                        '(SOURCE:NAME, e.g. chenyaofo:cifar100_resnet56; ijckd-teachers lists them)')
    parser.add_argument('--arch', help='model name; inferred from a <model>_vanilla/ folder if omitted')
    parser.add_argument('--out', required=True, help='directory to create')
    parser.add_argument('--num-classes', type=int,
                        help="class count; read from the classifier's shape if omitted")
    parser.add_argument('--verify', action='store_true', help='run PyTorch and Flax on one random batch; fail if '
                        f'the logits differ by more than {convert.TOLERANCE}')
    parser.add_argument('--allow-pickle', action='store_true',
                        help='let torch.load unpickle arbitrary objects (only for files you trust)')
    return parser.parse_args(argv)


def main(argv=None):
    arguments = parse_arguments(argv)
    try:
        if os.path.exists(arguments.out):
            raise convert.ConversionError(f'{arguments.out} already exists; choose another --out or remove it.')
        checkpoint, arch, num_classes, record = arguments.checkpoint, arguments.arch, arguments.num_classes, {}
        if teachers.is_teacher_name(checkpoint):
            teacher = teachers.find_teacher(checkpoint)
            checkpoint = teachers.fetch_checkpoint(teacher)
            arch, num_classes = arch or teacher.model, num_classes or teacher.num_classes
            record = {'teacher': teacher.name, 'url': teacher.url}
        convert.convert_checkpoint(checkpoint, arguments.out, arch, num_classes, arguments.verify,
                                   arguments.allow_pickle, record)
    except (convert.ConversionError, ValueError, FileExistsError, RunError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    print(f'wrote {arguments.out}')
    return 0
