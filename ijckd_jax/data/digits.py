"""scikit-learn's 1,797 handwritten 8×8 digits: real images that ship with a package, for the
offline demo."""
import numpy as np

from ijckd_jax.data.split import Split, process_indices

TEST_EXAMPLES = 360  # of 1,797: a fixed 20% test split
SPLITS = ('train', 'test')
CLASSES = 10
# The images' own statistics (every channel alike: the digits are grey), to 4 decimals.
MEAN, STD = 0.3049, 0.3757


def load_digits(split, image_size, process_index=0, process_count=1) -> Split:
    """This process's part of the digits, upscaled to image_size, as RGB.

    The train/test split is fixed (a permutation seeded with 0), whatever the run's seed.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    if split not in SPLITS:
        raise ValueError(f"The digits data set has splits 'train' and 'test', not '{split}'.")
    if image_size % 8:
        raise ValueError(f'Digits are 8×8; config.data.image_size must be a multiple of 8, got {image_size}.')
    digits = sklearn_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    chosen = order[:TEST_EXAMPLES] if split == 'test' else order[TEST_EXAMPLES:]
    chosen = chosen[process_indices(len(chosen), process_index, process_count)]
    scale = image_size // 8
    images = np.round(digits.images[chosen] * (255 / 16)).astype(np.uint8)  # 0..16 → 0..255
    images = images.repeat(scale, axis=1).repeat(scale, axis=2)  # nearest-neighbour upscaling
    return Split(np.repeat(images[..., None], 3, axis=-1), digits.target[chosen].astype(np.int32))
