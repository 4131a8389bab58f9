"""SFHformer: Fast Fourier Transform meets Transformer for image restoration (ECCV 2024)."""

from . import errors
from .errors import SFHformerError
from .models import (PRESETS, CheckpointError, SFHformer, SFHformerConfig, convert, create_model,
                     get_preset, load, save)

__version__ = "0.1.0"

__all__ = ["PRESETS", "CheckpointError", "SFHformer", "SFHformerConfig", "SFHformerError", "__version__", "convert",
           "create_model", "errors", "get_preset", "load", "save"]
