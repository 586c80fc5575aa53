"""CIFAR's training augmentation on the host: torchvision's RandomCrop(size, padding=4) and
RandomHorizontalFlip, as RepDistiller trains every CIFAR model (paper §4.1)."""
import numpy as np

PADDING = 4


def crop_and_flip(images, offsets, flips):
    """Crops of the zero-padded images at `offsets` (top, left), mirrored where `flips`."""
    size = images.shape[1]
    padded = np.pad(images, ((0, 0), (PADDING, PADDING), (PADDING, PADDING), (0, 0)))
    crops = np.stack([image[top:top + size, left:left + size]
                      for image, (top, left) in zip(padded, offsets)])
    return np.where(flips[:, None, None, None], crops[:, :, ::-1], crops)
