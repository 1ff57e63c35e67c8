"""Functional ReLU calls (`F.relu(x)`, `torch.relu(x)`, `x.relu()`) as capturable call sites, via torch.fx.

Module hooks see only modules; a ReLU applied functionally inside a forward method has no
module to hook. `trace_functional_relus` traces the model with torch.fx.symbolic_trace, finds
those calls and returns a GraphModule that computes the same thing and also passes each call's
output to its own nn.Identity "site" module, which hooks can then record. A call inside
module P's forward is named `P.relu()` (`relu()` in the root's forward), with `#k` by call
order when P's forward (or P, reused) makes several: the naming of reused modules.

Tracing specialises Python control flow to its values at trace time: `self.training` is read
then, so a graph is traced per training mode. A model whose forward depends on the data
(`if x.sum() > 0`) cannot be traced; the caller then falls back to module hooks and says so.
"""
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import fx, nn

FUNCTIONAL_RELUS = {F.relu, torch.relu, torch.relu_, F.relu_, torch.nn.functional.relu}
METHOD_RELUS = {"relu", "relu_"}
SITE_PREFIX = "_unit_site_"


@dataclass(frozen=True)
class TracedSites:
    """A traced copy of a model's forward that also feeds each functional ReLU call to an Identity module.

    Attributes:
        graph_module: runs like the model (its submodules are the model's own objects).
        sites: {site module name inside graph_module: layer name}, in call order.
    """

    graph_module: fx.GraphModule
    sites: dict[str, str]


def is_functional_relu(node: fx.Node) -> bool:
    return ((node.op == "call_function" and node.target in FUNCTIONAL_RELUS)
            or (node.op == "call_method" and node.target in METHOD_RELUS))


def owner_path(node: fx.Node) -> str:
    """The qualified name of the module whose forward made this call ("" for the root)."""
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack.values()))[0] if stack else ""


def trace_functional_relus(model: nn.Module) -> TracedSites:
    """Trace `model` (in its current training mode) and give each functional ReLU call a site module.

    Args:
        model: any nn.Module.
    Returns:
        TracedSites; `sites` is empty when the forward makes no functional ReLU call.
    Raises:
        whatever torch.fx raises for a model it cannot trace (the caller falls back to hooks).
    """
    graph_module = fx.symbolic_trace(model)
    calls = [node for node in graph_module.graph.nodes if is_functional_relu(node)]
    per_owner = Counter(owner_path(node) for node in calls)
    seen, sites = Counter(), {}
    for index, node in enumerate(calls):
        owner = owner_path(node)
        seen[owner] += 1
        layer = f"{owner}.relu()" if owner else "relu()"
        if per_owner[owner] > 1:
            layer += f"#{seen[owner]}"
        site = f"{SITE_PREFIX}{index}"
        graph_module.add_submodule(site, nn.Identity())
        with graph_module.graph.inserting_after(node):  # a side branch: the site's hooks see the value, nothing reads it
            graph_module.graph.call_module(site, (node,))
        sites[site] = layer
    graph_module.recompile()
    return TracedSites(graph_module, sites)


class FunctionalSites:
    """The functional ReLU call sites of one model, recorded through hooks while installed.

    `layer_names()` traces the model once in its current mode; a model torch.fx cannot trace
    gives no names and one warning saying that only module hooks apply. `install` makes the
    model's forward run the traced graph of its current training mode (traced on first use),
    with `make_hook(layer)` registered on each wanted site; `uninstall` restores the forward.

    Args:
        model: any nn.Module.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self._traced: dict[bool, TracedSites | None] = {}
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._make_hook, self._wanted = None, set()

    def layer_names(self) -> list[str]:
        traced = self._traced_for(self.model.training)
        return list(traced.sites.values()) if traced else []

    def _traced_for(self, training: bool) -> TracedSites | None:
        if training not in self._traced:
            try:
                self._traced[training] = trace_functional_relus(self.model)
            except Exception as error:  # torch.fx raises TraceError, TypeError, NotImplementedError, ...
                self._traced[training] = None
                reason = " ".join(str(error).split())[:160]
                warnings.warn(f"{type(self.model).__name__} cannot be traced by torch.fx ({type(error).__name__}: "
                              f"{reason}); capturing modules only: functional relu calls in its forward are not "
                              "captured", stacklevel=4)
            if self._make_hook is not None:
                self._hook_sites(self._traced[training])
        return self._traced[training]

    def _hook_sites(self, traced: TracedSites | None) -> None:
        if traced is None:
            return
        for site, layer in traced.sites.items():
            if layer in self._wanted:
                module = traced.graph_module.get_submodule(site)
                self._hooks.append(module.register_forward_hook(self._make_hook(layer)))

    def install(self, make_hook: Callable[[str], Callable], wanted: set[str]) -> None:
        """Route the model's forward through the traced graphs, recording the `wanted` layers."""
        self._make_hook, self._wanted = make_hook, set(wanted)
        self._previous_forward = self.model.__dict__.get("forward")
        for traced in self._traced.values():
            self._hook_sites(traced)
        model_class_forward = type(self.model).forward

        def traced_forward(*args, **kwargs):
            traced = self._traced_for(self.model.training)
            if traced is None:
                return model_class_forward(self.model, *args, **kwargs)
            return traced.graph_module(*args, **kwargs)

        self.model.forward = traced_forward  # an instance attribute: shadows the class's forward until uninstall

    def uninstall(self) -> None:
        """Remove the site hooks and restore the model's own forward (a no-op when not installed)."""
        if self._make_hook is None:
            return
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()
        self._make_hook, self._wanted = None, set()
        self.model.__dict__.pop("forward", None)
        if getattr(self, "_previous_forward", None) is not None:
            self.model.forward = self._previous_forward
