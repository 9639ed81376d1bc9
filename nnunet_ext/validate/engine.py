"""Run nnU-Net's own validation for any checkpoint into ``fold_k/validation_<stem>/``.

The torch side of ``nnunet-ext validate`` (:mod:`nnunet_ext.validate` checks the inputs first).
The checkpoint's trainer class is found by nnU-Net's lookup, constructed as
``nnUNetv2_train --val`` would, given the checkpoint's network weights (only those: label
checkpoints hold no optimizer state), and its ``perform_actual_validation`` runs with
``nnUNet_results`` pointed at a temporary folder inside the fold folder. The finished
``validation`` folder gets the model's ``dataset.json`` and ``plans.json`` (as an
``nnUNetv2_predict`` output folder has them) and is renamed to ``validation_<stem>``, so the
fold's own ``validation/``, logs and checkpoints are never written.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from nnunet_ext.io import load_json
from nnunet_ext.trainers.checkpoints import load_checkpoint

__all__ = ["validate_checkpoint"]

_TEMP_PREFIX = ".nnunet_ext-validate-"


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _load_weights(network: Any, weights: dict[str, Any]) -> None:
    module = getattr(network, "module", network)  # DDP
    module = getattr(module, "_orig_mod", module)  # torch.compile
    own = module.state_dict().keys()
    fixed = {
        (k[7:] if k not in own and k.startswith("module.") else k): v for k, v in weights.items()
    }
    module.load_state_dict(fixed)


def validate_checkpoint(
    fold_dir: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    save_probabilities: bool = False,
    device: str | None = None,
    allow_unsafe_checkpoints: bool = False,
) -> Path:
    """Validate one checkpoint of one fold with nnU-Net's ``perform_actual_validation``.

    Args:
        fold_dir: ``.../TRAINER__PLANS__CONF/fold_k`` (checked by
            :func:`nnunet_ext.validate.plan_validation`).
        checkpoint: A checkpoint file in it.
        output_dir: Where the validation folder ends up (replaced if it exists).
        save_probabilities: Export ``.npz`` probabilities (nnU-Net's ``--npz``).
        device: ``"cpu"``, ``"cuda"`` or ``"mps"``; default CUDA when available, else CPU.
        allow_unsafe_checkpoints: Load with ``weights_only=False`` (runs code from the file).

    Returns:
        ``output_dir``.

    Raises:
        ValueError: If the checkpoint lacks what nnU-Net's predictor needs.
    """
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    fold = Path(fold_dir)
    target = Path(output_dir)
    data = load_checkpoint(Path(checkpoint), allow_unsafe=allow_unsafe_checkpoints)
    try:
        trainer_name = str(data["trainer_name"])
        configuration = str(data["init_args"]["configuration"])
        fold_value = data["init_args"]["fold"]
        weights = data["network_weights"]
    except (KeyError, TypeError) as err:
        raise ValueError(
            f"{checkpoint}: not an nnU-Net checkpoint (missing {err}); it needs network_weights, "
            "trainer_name and init_args as nnUNetv2_train writes them."
        ) from err
    plans = load_json(fold.parent / "plans.json")
    dataset_json = load_json(fold.parent / "dataset.json")
    plans["continue_training"] = False
    chosen = device or ("cuda" if torch.cuda.is_available() else "cpu")
    with (
        tempfile.TemporaryDirectory(prefix=_TEMP_PREFIX, dir=fold) as scratch,
        contextlib.redirect_stdout(sys.stderr),  # nnU-Net's chatter; stdout is for results
    ):
        with _environment(nnUNet_results=scratch):
            with contextlib.redirect_stdout(io.StringIO()):  # the lookup lists every module
                trainer_class = recursive_find_trainer_class_by_name(trainer_name)
            trainer = trainer_class(
                plans=plans,
                configuration=configuration,
                fold=fold_value,
                dataset_json=dataset_json,
                device=torch.device(chosen),
            )
            trainer.initialize()
            _load_weights(trainer.network, weights)
            if "inference_allowed_mirroring_axes" in data:
                trainer.inference_allowed_mirroring_axes = data["inference_allowed_mirroring_axes"]
            trainer.print_to_log_file(f"nnunet_ext validate: {checkpoint} -> {target}")
            trainer.perform_actual_validation(save_probabilities)
            produced = Path(trainer.output_folder) / "validation"
            # as in an nnUNetv2_predict output folder, so ensemble and tune take it as it is
            for name in ("dataset.json", "plans.json"):
                shutil.copyfile(fold.parent / name, produced / name)
        old = None
        if target.exists():
            old = Path(scratch) / "previous"
            os.replace(target, old)
        os.replace(produced, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return target
