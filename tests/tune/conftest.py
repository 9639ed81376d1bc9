import pytest

from nnunet_ext.synthetic import make_cv_folders


@pytest.fixture(scope="session")
def cv(tmp_path_factory):
    """CV folders of two models: model 0 good at label 1, model 1 at label 2."""
    root = tmp_path_factory.mktemp("cv")
    return make_cv_folders(root, good_labels=((1,), (2,)), num_cases=6, shape=(10, 36, 36))
