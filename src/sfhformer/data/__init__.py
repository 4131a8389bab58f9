"""Data: paired benchmark folders, synthetic degradations, sample photographs."""

from .datasets import PairedImageDataset, SyntheticDataset, build_dataset, load_rgb
from .layouts import LAYOUTS, SPLITS, Layout, find_pairs, get_layout, split_names
from .degradations import DEGRADATIONS, Compose
from .samples import HELD_OUT, PHOTOGRAPHS, photograph_path, photographs

__all__ = ["DEGRADATIONS", "HELD_OUT", "LAYOUTS", "PHOTOGRAPHS", "SPLITS", "Compose", "Layout", "PairedImageDataset",
           "SyntheticDataset", "build_dataset", "find_pairs", "get_layout", "load_rgb", "photograph_path", "photographs",
           "split_names"]
