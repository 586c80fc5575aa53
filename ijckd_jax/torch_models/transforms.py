"""torchvision's ImageNet transforms on PIL images, transcribed from torchvision 0.2x
(transforms.py and functional.py), the reference the streamed pipeline (data/stream.py) is
checked against: the paper trains with RandomResizedCrop(224) + RandomHorizontalFlip and
evaluates at Resize(256) + CenterCrop(224), all on PIL images, resized with Image.BILINEAR.

torchvision itself is not a dependency (its PyPI wheel needs PyTorch's CUDA build); on PIL
images these transforms are the few PIL calls below.
"""
import math

import torch
from PIL import Image

SCALE = (0.08, 1.0)
RATIO = (3.0 / 4.0, 4.0 / 3.0)


def random_resized_crop_params(width, height, scale=SCALE, ratio=RATIO):
    """RandomResizedCrop.get_params: (top, left, height, width) of the window, with torch's
    random number generator, as torchvision draws it."""
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1]).item()
        aspect_ratio = math.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1]).item())
        crop_width = int(round(math.sqrt(target_area * aspect_ratio)))
        crop_height = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < crop_width <= width and 0 < crop_height <= height:
            top = torch.randint(0, height - crop_height + 1, size=(1,)).item()
            left = torch.randint(0, width - crop_width + 1, size=(1,)).item()
            return top, left, crop_height, crop_width
    in_ratio = float(width) / float(height)  # the fallback: a central crop
    if in_ratio < min(ratio):
        crop_width = width
        crop_height = int(round(crop_width / min(ratio)))
    elif in_ratio > max(ratio):
        crop_height = height
        crop_width = int(round(crop_height * max(ratio)))
    else:
        crop_width, crop_height = width, height
    return (height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width


def resized_crop(image, top, left, height, width, size):
    """functional.resized_crop on a PIL image: crop, then resize to size × size (bilinear)."""
    return image.crop((left, top, left + width, top + height)).resize((size, size), Image.BILINEAR)


def resize(image, size):
    """Resize(size) on a PIL image: the shorter side to `size`, the longer scaled and truncated
    (functional._compute_resized_output_size)."""
    width, height = image.size
    shorter, longer = (width, height) if width <= height else (height, width)
    new_longer = int(size * longer / shorter)
    new_width, new_height = (size, new_longer) if width <= height else (new_longer, size)
    return image.resize((new_width, new_height), Image.BILINEAR)


def center_crop(image, size):
    """CenterCrop(size) on a PIL image at least `size` on each side."""
    width, height = image.size
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return image.crop((left, top, left + size, top + size))
