"""What a demo run is: its dataset, configurations and folds, sizes and training settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["CONFIGURATIONS", "DATASET_ID", "DATASET_NAME", "FOLDS", "DemoConfig"]

DATASET_ID = 501
DATASET_NAME = "Dataset501_SyntheticHeart"
CONFIGURATIONS = ("2d", "3d_fullres")
FOLDS = (0, 1)


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and training settings of a demo run.

    Attributes:
        num_training: Training cases (split in two folds).
        num_test: Test cases, with references in ``labelsTs`` (12 by default: enough for a
            per-label mean Dice to mean something; they are cheap to predict).
        shape: Case shape (z, y, x).
        seed: Seed of the synthetic dataset and of the training runs (``nnUNet_seed``, with
            nnU-Net's augmentation in the training process, ``nnUNet_n_proc_DA=0``): a seed's
            models are then the same from run to run on the same machine and software.
        training_env: Our trainer settings, as the environment variables a user would set
            (the seed's two variables are added, see :meth:`training_environment`).
        trainer: ``-tr`` name.
        configuration_env: Per configuration, settings that replace ``training_env``'s.
        num_holdout: Labeled hold-out cases (``imagesVal``/``labelsVal``) that no fold trains
            on, predicted by the fold-averaged models: ``tune --holdout``'s second estimate.
        anatomy: The synthetic anatomy (:func:`nnunet_ext.synthetic.make_raw_dataset`).
    """

    num_training: int = 10
    num_test: int = 12
    shape: tuple[int, int, int] = (16, 48, 48)
    seed: int = 0
    training_env: Mapping[str, str] = field(
        default_factory=lambda: {
            "nnUNet_n_epochs": "12",
            "nnUNet_iters_per_epoch": "6",
            "nnUNet_val_iters_per_epoch": "2",
            "nnUNet_patience": "4",
            "nnUNet_min_delta": "0.002",
            "nnUNet_min_epochs": "4",
        }
    )
    trainer: str = "CustomEpochs"
    configuration_env: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: {"2d": {"nnUNet_iters_per_epoch": "18"}}
    )
    num_holdout: int = 6
    anatomy: str = "short_axis"

    def training_environment(self, configuration: str | None = None) -> dict[str, str]:
        """The settings of one configuration's training, seeded.

        ``training_env``, then ``configuration_env``'s for ``configuration``, with
        ``nnUNet_seed`` and ``nnUNet_n_proc_DA=0`` (reproducible runs).

        Examples:
            >>> env = DemoConfig(seed=3).training_environment("3d_fullres")
            >>> env["nnUNet_seed"], env["nnUNet_n_proc_DA"], env["nnUNet_n_epochs"]
            ('3', '0', '12')
        """
        own = self.configuration_env.get(configuration or "", {})
        return {
            "nnUNet_seed": str(self.seed),
            "nnUNet_n_proc_DA": "0",
            **self.training_env,
            **own,
        }

    @classmethod
    def quick(cls, seed: int = 0) -> DemoConfig:
        """A smaller, shorter run for the test suite: every step, little training."""
        return cls(
            num_training=6,
            num_test=2,
            num_holdout=2,
            configuration_env={},
            seed=seed,
            training_env={
                "nnUNet_n_epochs": "3",
                "nnUNet_iters_per_epoch": "2",
                "nnUNet_val_iters_per_epoch": "1",
                "nnUNet_patience": "1",
                "nnUNet_min_delta": "1",
            },
        )
