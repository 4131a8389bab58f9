"""SFHformer: Fast Fourier Transform meets Transformer for image restoration (ECCV 2024)."""

from .models import (PRESETS, CheckpointError, SFHformer, SFHformerConfig, convert, create_model,
                     get_preset, load, save)

__version__ = "0.1.0"

__all__ = ["PRESETS", "CheckpointError", "SFHformer", "SFHformerConfig", "__version__", "convert",
           "create_model", "get_preset", "load", "save"]
