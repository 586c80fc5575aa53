"""What the shipped student costs beside its teacher: parameters, MACs, latency.

    python bench/deploy.py                       # the headline pairs and the demo's
    python bench/deploy.py --pair resnet32x4-resnet8x4 --image-size 32 --classes 100

For each teacher-student pair, three deployed models (BatchNorm folded, exported exactly as
tools/export_student.py writes them: the jax.export artifact called through its
deserialization, and the ONNX file in onnxruntime on the CPU): the teacher alone; the IJCKD
student as deployed (student backbone + connector + the teacher's classifier); the same
student with its own classifier (what ce, kd or SRRL ship). Latency is the median of 20
calls at batch 1, throughput at batch 64. The weights are random: the cost does not depend on
their values. Benchmarks are not tests: nothing asserts a time.
"""
import argparse

import jax
import numpy as np
import onnxruntime

from ijckd_jax.deploy.artifact import export_function, export_onnx
from ijckd_jax.deploy.cost import count_macs, count_parameters, latency, median_seconds
from ijckd_jax.deploy.inference import deployed_model, deployed_variables, fold, predict
from ijckd_jax.distillation import build_distiller, init_trainable

PAIRS = (('resnet32x4-resnet8x4', 32, 100), ('wrn_40_2-wrn_16_2', 32, 100), ('vgg13-MobileNetV2', 32, 100),
         ('resnet20-resnet8', 16, 10))  # the last: the offline demo's pair on the digits


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--pair', help="'teacher-student'; all of PAIRS if omitted")
    parser.add_argument('--image-size', type=int, default=32)
    parser.add_argument('--classes', type=int, default=100)
    parser.add_argument('--repeats', type=int, default=20)
    return parser.parse_args()


def shipped(objective, student, teacher, classes, image_size):
    """(serialized artifact, serialized ONNX, parameters by part, MACs per image) of a model
    trained with `objective`, with random weights."""
    distiller = build_distiller(objective, student, teacher, classes, image_size=image_size)
    images = np.zeros((1, image_size, image_size, 3), np.float32)
    trainable = jax.jit(lambda key: init_trainable(distiller, key, images))(jax.random.key(0))
    teacher_variables = {}
    if distiller.teacher is not None:
        teacher_variables = jax.jit(distiller.teacher.init)(jax.random.key(1), images)
    deployed = deployed_model(distiller, objective, image_size, (0.5,) * 3, (0.25,) * 3)
    variables = deployed_variables(deployed, trainable, teacher_variables)
    folded = fold(deployed, variables, image_size)
    function = lambda batch: predict(deployed, folded.variables, batch, folded.pairs)  # noqa: E731
    parameters = {part: count_parameters(part_variables) for part, part_variables in folded.variables.items()}
    return (export_function(function, image_size), export_onnx(function, image_size), parameters,
            count_macs(deployed, folded, image_size))


def onnx_latency(serialized, image_size, batch, repeats):
    """Median seconds of one onnxruntime call on a uint8 batch."""
    session = onnxruntime.InferenceSession(serialized, providers=['CPUExecutionProvider'])
    feed = {session.get_inputs()[0].name: np.zeros((batch, image_size, image_size, 3), np.uint8)}
    return median_seconds(lambda: session.run(None, feed), repeats)


def measure(pair, image_size, classes, repeats):
    teacher, student = pair.split('-')
    rows = [(f'teacher {teacher}', *shipped('ce', teacher, None, classes, image_size)),
            (f'IJCKD student {student} (+ connector + teacher classifier)',
             *shipped('ijckd', student, teacher, classes, image_size)),
            (f'student {student}, own classifier', *shipped('ce', student, None, classes, image_size))]
    for name, serialized, onnx, parameters, macs in rows:
        times = [latency(serialized, image_size, 1, repeats), latency(serialized, image_size, 64, repeats),
                 onnx_latency(onnx, image_size, 1, repeats), onnx_latency(onnx, image_size, 64, repeats)]
        share = sum(count for part, count in parameters.items() if part in ('connector', 'teacher_classifier'))
        total = sum(parameters.values())
        print(f'| {pair} @{image_size}px | {name} | {total / 1e6:.3f} M | {share / total:.1%} '
              f'| {macs / 1e6:.1f} M | {times[0] * 1000:.2f} ms | {64 / times[1]:,.0f} img/s '
              f'| {times[2] * 1000:.2f} ms | {64 / times[3]:,.0f} img/s |', flush=True)


def main():
    arguments = parse_arguments()
    print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}, onnxruntime {onnxruntime.__version__}; '
          'BatchNorm folded')
    print('| pair | shipped model | parameters | connector + teacher classifier | MACs / image '
          '| jax: batch 1 | jax: batch 64 | onnxruntime: batch 1 | onnxruntime: batch 64 |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    pairs = [(arguments.pair, arguments.image_size, arguments.classes)] if arguments.pair else PAIRS
    for pair, image_size, classes in pairs:
        measure(pair, image_size, classes, arguments.repeats)


if __name__ == '__main__':
    main()
