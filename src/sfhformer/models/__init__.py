"""The SFHformer network: config and presets, blocks, network, the authors' format, checkpoints."""

from ..errors import CheckpointError
from .authors import authors_key_map, infer_config
from .checkpoint import convert, load, save
from .config import PRESETS, SFHformerConfig, get_preset, preset_name
from .network import SFHformer, create_model

__all__ = ["PRESETS", "CheckpointError", "SFHformer", "SFHformerConfig", "authors_key_map", "convert",
           "create_model", "get_preset", "infer_config", "load", "preset_name", "save"]
