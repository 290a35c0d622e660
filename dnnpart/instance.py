"""``dnnpart.Instance``: the model's instance class with constructors for code-built instances.

Every constructor builds spec-form data (the structure of an instance file) and hands it to the one
loader, :func:`formulation.loader.load_instance_data`, so an instance built in code is validated,
unit strings are converted and errors name the field exactly as for a file.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from formulation import model as _model
from formulation.schema import FORMAT_VERSION

if TYPE_CHECKING:
    import networkx as nx

#: Node attributes of :meth:`Instance.from_networkx` that become layer fields.
LAYER_KEYS = ("op", "flops", "output_bytes", "param_bytes", "workspace_bytes", "attrs")

SystemLike = Mapping[str, Any] | str | os.PathLike[str] | _model.Instance
"""A system section (mapping), a system or instance file, or an instance whose system is reused."""


class Instance(_model.Instance):
    """A validated partitioning instance (:class:`formulation.model.Instance` with constructors).

    Everything in dnnpart accepts any :class:`formulation.model.Instance`; this subclass only adds
    the ways to build one. All quantities inside are SI base units.
    """

    @classmethod
    def of(cls, inst: _model.Instance) -> Instance:
        """The same instance as a :class:`dnnpart.Instance` (no copy of the graph or system)."""
        if isinstance(inst, cls):
            return inst
        return cls(**{f.name: getattr(inst, f.name) for f in dataclasses.fields(inst)})

    def with_problem(self, problem: _model.Problem) -> Instance:
        """The same model and system under another problem (still a :class:`dnnpart.Instance`)."""
        return Instance.of(super().with_problem(problem))

    def to_dict(self) -> dict[str, Any]:
        """The instance as plain data (SI numbers, model and system inline) that :meth:`from_dict` loads back.

        See :func:`formulation.loader.instance_to_data`; ``yaml.safe_dump`` or ``json.dump`` it to
        keep an instance built in code.
        """
        from formulation.loader import instance_to_data

        return instance_to_data(self)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, allow_outside: bool = False) -> Instance:
        """Load an instance file (YAML or JSON); see :func:`formulation.loader.load_instance`."""
        from formulation.loader import load_instance

        return cls.of(load_instance(path, allow_outside=allow_outside))

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        base_dir: str | os.PathLike[str] | None = None,
        file: str = "<dict>",
    ) -> Instance:
        """Build an instance from data with the structure of an instance file.

        Quantities may be numbers (SI base units) or unit strings (``"1.2 GFLOP"``, ``"8 Mbit/s"``).
        ``{file: PATH}`` references are read relative to ``base_dir`` (default: the working directory).

        Raises
        ------
        formulation.errors.InstanceError
            With ``file`` as the file name and the field path of the first problem.
        """
        from formulation.loader import load_instance_data

        return cls.of(load_instance_data(data, file=file, base_dir=base_dir))

    @classmethod
    def from_networkx(
        cls,
        graph: nx.DiGraph,
        system: SystemLike,
        problem: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        inputs: Mapping[str, float | str] | None = None,
    ) -> Instance:
        """Build an instance from a networkx DAG whose nodes are layers.

        Parameters
        ----------
        graph : networkx.DiGraph
            One node per layer (its id is ``str(node)``); an edge ``u -> v`` means ``v`` reads the
            output of ``u``. Node attributes: ``flops`` and ``output_bytes`` (required),
            ``param_bytes``, ``workspace_bytes``, ``op`` (default ``"layer"``), ``attrs`` (a dict of
            free metadata) and ``reads`` (ids of the model inputs the layer reads; by default every
            layer without predecessors reads every model input). A node without ``output_bytes``
            takes it from the ``bytes`` attribute of its out-edges when they agree (one tensor is
            sent to every consumer). A node whose ``layer`` attribute is a
            :class:`formulation.model.Layer` takes its fields from it, so ``inst.graph.nx`` converts
            back. Numbers are SI; unit strings work.
        system : mapping, path or Instance
            The system section (devices, links, source, sink), a file holding one (a system file or
            an instance file), or an instance whose system is reused.
        problem : mapping, optional
            The problem section (default ``{"objective": "latency"}``).
        name : str, optional
            Instance and model name (default ``graph.name`` or ``"model"``).
        inputs : mapping, optional
            Model inputs ``{id: bytes}``; they live on the system's source at time 0.
        """
        label = name or str(graph.graph.get("name") or "") or "model"
        model_inputs = dict(inputs or {})
        layers = []
        for node, node_attrs in graph.nodes(data=True):
            attrs = {**_layer_fields(node_attrs.get("layer")), **node_attrs}
            layer: dict[str, Any] = {"id": str(node), "op": attrs.get("op", "layer")}
            preds = [str(u) for u in graph.predecessors(node)]
            reads = attrs.get("reads", list(model_inputs) if not preds else [])
            layer["inputs"] = preds + [str(r) for r in reads]
            layer.update({k: attrs[k] for k in LAYER_KEYS if k in attrs and k != "op"})
            sizes = _edge_sizes(graph, node)
            if "output_bytes" not in layer and len(sizes) == 1:  # the tensor size given on the edges
                layer["output_bytes"] = sizes.pop()
            layers.append(layer)
        model = {
            "name": label,
            "inputs": [{"id": k, "bytes": v} for k, v in model_inputs.items()],
            "layers": layers,
        }
        return cls._assemble(label, model, system, problem)

    @classmethod
    def from_module(
        cls,
        module: Any,
        example_inputs: Any,
        system: SystemLike,
        problem: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        level: Literal["module", "op"] = "module",
        method: Literal["auto", "export", "fx"] = "auto",
    ) -> Instance:
        """Build an instance from a PyTorch ``nn.Module`` with the torch importer (torch is needed here only).

        The model section comes from :func:`toolchain.importers.from_module` (one layer per leaf
        module call, FLOP counted by torch's counter); ``system`` and ``problem`` are as in
        :meth:`from_networkx`.
        """
        from toolchain.importers import from_module

        model = from_module(module, example_inputs, level, name=name, method=method)
        return cls._assemble(name or model["name"], model, system, problem)

    @classmethod
    def _assemble(
        cls, name: str, model: Mapping[str, Any], system: SystemLike, problem: Mapping[str, Any] | None
    ) -> Instance:
        base_dir: Path | None = None
        if isinstance(system, _model.Instance):
            from formulation.loader import instance_to_data

            sys_data: Any = instance_to_data(system)["system"]
        elif isinstance(system, str | os.PathLike):
            path = Path(system).resolve()
            base_dir, sys_data = path.parent, {"file": path.name}
            if _is_instance_file(path):
                sys_data = {"file": f"{path.name}#system"}
        else:
            sys_data = dict(system)
        data = {
            "dnnpart": FORMAT_VERSION,
            "name": name,
            "model": dict(model),
            "system": sys_data,
            "problem": dict(problem) if problem is not None else {"objective": "latency"},
        }
        return cls.from_dict(data, base_dir=base_dir, file=f"<{name}>")


def _edge_sizes(graph: nx.DiGraph, node: Any) -> set[float]:
    """The distinct ``bytes`` of ``node``'s out-edges in bytes (unit strings read; unreadable ones left out)."""
    from formulation.errors import InstanceError
    from formulation.units import parse_quantity

    out = set()
    for _, _, b in graph.out_edges(node, data="bytes"):
        if b is not None:
            try:
                out.add(parse_quantity(b, "bytes"))
            except InstanceError:
                continue
    return out


def _layer_fields(layer: Any) -> dict[str, Any]:
    """The figures of a :class:`formulation.model.Layer` (nodes of ``Graph.nx`` carry one), else nothing."""
    if not isinstance(layer, _model.Layer):
        return {}
    out = {k: getattr(layer, k) for k in ("op", "flops", "output_bytes", "param_bytes", "workspace_bytes")}
    return {**out, **({"attrs": dict(layer.attrs)} if layer.attrs else {})}


def _is_instance_file(path: Path) -> bool:
    """True when ``path`` holds a whole instance (a ``dnnpart:`` key) rather than a system section."""
    from formulation.yamlio import load_file

    try:
        data = load_file(path, display=str(path))
    except Exception:  # the loader reports a bad file with its own message
        return False
    return isinstance(data, Mapping) and "dnnpart" in data
