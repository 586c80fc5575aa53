"""Input: this process's part of each split, in an order fixed by the seed and the epoch.

    split.py        the in-memory Split, the per-process cut of a data set
    digits.py       scikit-learn's handwritten digits (the offline demo)
    folders.py      image folders: root/train/<class>/<image>, root/test/<class>/<image>
    tfds_source.py  tfds data sets (cifar100, imagenet2012, ...)
    augment.py      CIFAR's random crop and flip, on the host
    stream.py       ImageNet-sized splits streamed, decoded by PIL with torchvision's crops
    prepare.py      a prepared copy of an image folder at a smaller size (ijckd-prepare)
    pipeline.py     the host pipeline of one run: which source, in memory or streamed
    device.py       an in-memory training split held on the devices, augmented in the step

Normalisation happens on the device, inside the jitted step. TensorFlow is imported only
where tf.data runs: reading tfds data sets (tfds_source.py, stream.py).
"""
