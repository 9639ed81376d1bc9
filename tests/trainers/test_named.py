import pickle

import pytest

pytest.importorskip("torch")

from nnunet_ext.trainers import CustomEpochs, named_trainer
from nnunet_ext.trainers.settings import SettingsError


def test_named_class_has_its_exact_name_and_settings():
    cls = named_trainer("CustomEpochs_e250_p30")
    assert cls.__name__ == "CustomEpochs_e250_p30"
    assert issubclass(cls, CustomEpochs)
    assert cls.nnunet_ext_name_settings == {"num_epochs": 250, "patience": 30}
    assert named_trainer("CustomEpochs_e250_p30") is cls  # cached: one class per name
    assert pickle.loads(pickle.dumps(cls)) is cls


def test_plain_names_are_not_named_trainers():
    with pytest.raises(AttributeError, match="nnUNetTrainer_250epochs"):
        named_trainer("nnUNetTrainer_250epochs")
    with pytest.raises(AttributeError, match="CustomEpochs"):
        named_trainer("CustomEpochs")


def test_malformed_suffix_raises_a_clear_error():
    with pytest.raises(SettingsError, match="unknown key 'q'"):
        named_trainer("CustomEpochs_q5")
