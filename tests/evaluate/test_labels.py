import pytest

from nnunet_ext.evaluate.labels import label_ids_from_dataset_json
from nnunet_ext.io.errors import InputError


def test_label_ids_from_dataset_json_rejects_bad_labels():
    with pytest.raises(InputError, match=r"d.json: labels.x must be an integer >= 0"):
        label_ids_from_dataset_json({"labels": {"background": 0, "x": "1"}}, source="d.json")
