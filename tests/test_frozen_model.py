"""A saved model (what a teacher is): written whole, read back into the architecture its
model.json names, and refused with every difference when the variables are another model's."""
import json
import shutil

import jax
import numpy as np
import pytest

from ijckd_jax.errors import SavedModelError
from ijckd_jax.frozen_model import FrozenModel, load_frozen_model, save_frozen_model
from ijckd_jax.models import abstract_variables

pytestmark = pytest.mark.quick  # every test of this file is in the quick tier


def saved_resnet8(directory):
    """A resnet8 with 100 classes, every variable numbered so that a mix-up would show."""
    counter = iter(range(1, 10_000))
    variables = jax.tree.map(lambda leaf: np.full(leaf.shape, next(counter), leaf.dtype),
                             abstract_variables('resnet8', 100))
    save_frozen_model(directory, FrozenModel('resnet8', 100, variables))
    return variables


def rewrite_metadata(directory, **fields):
    path = directory / 'model.json'
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


def test_a_saved_model_reads_back_exactly(tmp_path):
    variables = saved_resnet8(tmp_path / 'resnet8')
    frozen = load_frozen_model(tmp_path / 'resnet8')
    assert (frozen.model_name, frozen.num_classes) == ('resnet8', 100)
    assert jax.tree.structure(frozen.variables) == jax.tree.structure(variables)
    jax.tree.map(np.testing.assert_array_equal, frozen.variables, variables)


def test_variables_of_another_architecture_are_refused_with_the_differences(tmp_path):
    saved_resnet8(tmp_path / 'teacher')
    rewrite_metadata(tmp_path / 'teacher', model='resnet14')
    with pytest.raises(ValueError, match="names resnet14 with 100 classes, but the saved variables "
                                         "are not that model's") as error:
        load_frozen_model(tmp_path / 'teacher')
    assert 'missing params/layer1.1/conv1/kernel [3, 3, 16, 16]' in str(error.value)


def test_a_class_count_that_does_not_fit_names_both_shapes(tmp_path):
    saved_resnet8(tmp_path / 'teacher')
    rewrite_metadata(tmp_path / 'teacher', num_classes=10)
    with pytest.raises(ValueError, match=r'params/fc/kernel: stored \[64, 100\], expected \[64, 10\]'):
        load_frozen_model(tmp_path / 'teacher')


def test_a_model_without_its_variables_says_it_is_incomplete(tmp_path):
    saved_resnet8(tmp_path / 'teacher')
    shutil.rmtree(tmp_path / 'teacher' / 'variables')
    with pytest.raises(SavedModelError, match='has model.json but no variables/ directory'):
        load_frozen_model(tmp_path / 'teacher')
