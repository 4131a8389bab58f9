"""Data: paired benchmark folders, synthetic degradations, sample photographs."""

from .datasets import LAYOUTS, Layout, PairedImageDataset, SyntheticDataset, build_dataset, find_pairs, load_rgb
from .degradations import DEGRADATIONS, Compose
from .samples import HELD_OUT, PHOTOGRAPHS, photograph_path, photographs

__all__ = ["DEGRADATIONS", "HELD_OUT", "LAYOUTS", "PHOTOGRAPHS", "Compose", "Layout", "PairedImageDataset",
           "SyntheticDataset", "build_dataset", "find_pairs", "load_rgb", "photograph_path", "photographs"]
