"""Training: typed configuration, processes, loss, resumable state, and the loop.

    from sfhformer.training import load_config, train
    summary = train(load_config("configs/denoise_samples.yaml", ["train.steps=200"]))
"""

from ..errors import TrainingError
from .config import (CheckpointConfig, DataConfig, LogConfig, PairedData, RunConfig, SyntheticData, TrainConfig,
                     ValConfig, load_config)
from .distributed import EpochBatchSampler, GlobalBatchNorm2d, Processes, use_global_batchnorm
from .loop import train, validate
from .loss import restoration_loss
from .state import EMA, TrainState, initial_weights

__all__ = ["EMA", "CheckpointConfig", "DataConfig", "EpochBatchSampler", "GlobalBatchNorm2d", "LogConfig", "PairedData",
           "Processes", "RunConfig", "SyntheticData", "TrainConfig", "TrainState", "TrainingError", "ValConfig",
           "initial_weights", "load_config", "restoration_loss", "train", "use_global_batchnorm",
           "validate"]
