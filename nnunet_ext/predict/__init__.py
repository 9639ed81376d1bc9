"""``nnunet-ext predict``: weighted multi-model prediction in one pass, resumable and shardable.

Each case is preprocessed once per distinct preprocessing, predicted by every member with
nnU-Net's own ``nnUNetPredictor``, brought to the original geometry with nnU-Net's own export
function and added into one weighted float32 accumulator; no member's probabilities are written.
Importing this package does not import torch; :mod:`nnunet_ext.predict.engine` does.
"""

from nnunet_ext.predict.folders import PredictSummary, predict_arrays, predict_folder

__all__ = ["PredictSummary", "predict_arrays", "predict_folder"]
