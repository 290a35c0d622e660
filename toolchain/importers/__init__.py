"""Importers: real networks (PyTorch modules, ONNX files) to dnnpart model sections.

``from_module`` and ``from_onnx`` return the spec-form model dict (or a Graph); heavy libraries
are imported only when an importer is called.
"""

from __future__ import annotations

from typing import Any

from toolchain.importers.common import dump_model_yaml, to_graph, totals, write_model_yaml

__all__ = ["dump_model_yaml", "from_module", "from_onnx", "to_graph", "totals", "write_model_yaml"]


def from_module(*args: Any, **kwargs: Any) -> Any:
    """See :func:`toolchain.importers.pytorch.from_module`."""
    from toolchain.importers.pytorch import from_module as impl

    return impl(*args, **kwargs)


def from_onnx(*args: Any, **kwargs: Any) -> Any:
    """See :func:`toolchain.importers.onnx_model.from_onnx`."""
    from toolchain.importers.onnx_model import from_onnx as impl

    return impl(*args, **kwargs)
