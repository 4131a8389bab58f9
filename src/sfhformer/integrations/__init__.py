"""Adapters to other ecosystems. Each submodule imports its own optional dependency, so
importing this package needs nothing beyond sfhformer itself:

- :mod:`sfhformer.integrations.spandrel`: load SFHformer checkpoints through spandrel
  (chaiNNer, ComfyUI); ``install()`` registers the architecture. See ``docs/spandrel.md``.
"""
