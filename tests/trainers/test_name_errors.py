"""Malformed trainer names are one line from the real ``nnUNetv2_train``, and nothing is created."""

from __future__ import annotations

import pytest
from nnunet_workspace import DATASET_ID, NnunetWorkspace

pytestmark = [pytest.mark.nnunet, pytest.mark.slow]


def _tree(ws: NnunetWorkspace) -> set[str]:
    return {
        str(p.relative_to(root))
        for root in (ws.raw, ws.preprocessed, ws.results)
        if root.exists()
        for p in root.rglob("*")
    }


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param("CustomEpochs_x5", "unknown key 'x' in '_x5'", id="unknown-key"),
        pytest.param("CustomEpochs_e5_e6", "key 'e' given twice", id="duplicate"),
        pytest.param("CustomEpochs_e5__p3", "is malformed", id="double-underscore"),
        pytest.param("CustomEpochs_", "is malformed", id="empty-suffix"),
        pytest.param("CustomEpochs_ep5", "'_ep5' must be an integer", id="bad-token"),
        pytest.param("CustomEpochs_d0p1p2", "is not a decimal", id="bad-decimal"),
    ],
)
def test_train_with_a_malformed_name_is_one_line(
    workspace: NnunetWorkspace, name: str, message: str
) -> None:
    before = _tree(workspace)
    result = workspace.run(
        "nnUNetv2_train", str(DATASET_ID), "3d_fullres", "0", "-tr", name, "-device", "cpu"
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("nnunet_ext: error: trainer name ")
    assert repr(name) in errors[0]
    assert message in errors[0]
    assert _tree(workspace) == before  # no results folder, no log, nothing
