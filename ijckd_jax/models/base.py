"""The shape every model shares: f = g ∘ Φ, a backbone Φ and a classifier g (paper §3)."""
from typing import Any, ClassVar

import jax.numpy as jnp
import flax.linen as nn

from ijckd_jax.models.layers import ModelOutput, global_average_pool, torch_linear_init


class ImageClassifier(nn.Module):
    """Base of every backbone: `backbone` gives the feature map, g pools it and applies a linear layer.

    Subclasses implement `backbone(images, train)`, returning the map the classifier pools, the
    intermediate maps the original project's forward lists (`ModelOutput.stages`), the same
    maps before their ReLU and the affine parameters of the BatchNorms before those ReLUs
    (`preact_stages`, `preact_norms`: mdistiller's feats["preact_feats"] and
    get_bn_before_relu()), and name their classifier after the PyTorch module
    (`classifier_name`). `classify` applies g alone to any feature map of the right width,
    which is how a student reuses the frozen teacher classifier:
    `teacher.apply(teacher_variables, features, method='classify')`.
    """
    num_classes: int = 100
    dtype: Any = jnp.float32
    classifier_name: ClassVar[str] = 'fc'

    def setup(self):
        # Defined in setup, not inline, so that `classify` can run without the backbone.
        self.classifier = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=jnp.float32,
                                   kernel_init=torch_linear_init, name=self.classifier_name)

    @nn.compact
    def __call__(self, images, train: bool = False, classify: bool = True) -> ModelOutput:
        """The logits, feature map, pooled features, stage maps and their pre-activation maps
        and BatchNorms; without `classify`, no logits (None), and the classifier's variables are
        not needed (a deployed model that predicts with another classifier)."""
        features, stages, preact_stages, preact_norms = self.backbone(images, train)
        pooled = global_average_pool(features)
        return ModelOutput(self.linear(pooled) if classify else None, features, pooled, stages, preact_stages,
                           preact_norms)

    def classify(self, features):
        """g(features): global average pool, then the linear layer; float32 logits."""
        return self.linear(global_average_pool(features))

    def linear(self, pooled):
        return self.classifier(pooled).astype(jnp.float32)

    def backbone(self, images, train: bool):
        """(features, stages, preact_stages, preact_norms): the map the classifier pools, two
        tuples of NHWC maps, and a tuple of (scale, bias) pairs (layers.norm_affine)."""
        raise NotImplementedError
