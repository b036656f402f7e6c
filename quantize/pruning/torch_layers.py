"""Give a PyTorch model real layer modules so torch.nn.utils.prune and torch-pruning can see them.

A `.pt2` model arrives as `ExportedProgram.module()`: a torch.fx GraphModule whose layers are aten
calls (`aten.conv2d`, `aten.linear`, `aten.batch_norm`, `aten.layer_norm`) on tensors held by plain
`nn.Module` containers. Pruning tools work on `nn.Conv2d` / `nn.Linear` / norm modules (forward
hooks, layer types, shapes they can rewrite), so each such call becomes a `call_module` of a real
layer that owns the same tensors under the same names (the state dict is unchanged). Other ops stay
as they are; a container holding anything else is left alone, and its layer is not prunable.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any

# tensor arguments of each lifted aten op, by schema name (= the layer's attribute name)
_TENSORS = ("weight", "bias", "running_mean", "running_var")


def _conv(layer_cls: Any) -> Callable[[dict[str, Any], Any], Any]:
    def build(args: dict[str, Any], weight: Any) -> Any:
        groups = int(args["groups"])
        padding = args["padding"] if isinstance(args["padding"], str) else tuple(args["padding"])
        return layer_cls(weight.shape[1] * groups, weight.shape[0], tuple(weight.shape[2:]),
                         stride=tuple(args["stride"]), padding=padding, dilation=tuple(args["dilation"]),
                         groups=groups, bias=args["bias"] is not None, device="meta")

    return build


def _builders() -> dict[Any, Callable[[dict[str, Any], Any], Any]]:
    import torch
    from torch import nn

    aten = torch.ops.aten
    builders: dict[Any, Callable[[dict[str, Any], Any], Any]] = {
        aten.linear.default: lambda args, w: nn.Linear(w.shape[1], w.shape[0], bias=args["bias"] is not None,
                                                       device="meta"),
        aten.layer_norm.default: lambda args, w: nn.LayerNorm(
            list(args["normalized_shape"]), eps=args["eps"], elementwise_affine=args["weight"] is not None,
            bias=args["bias"] is not None, device="meta"),
    }
    for conv, layer in ((aten.conv1d, nn.Conv1d), (aten.conv2d, nn.Conv2d), (aten.conv3d, nn.Conv3d)):
        builders[conv.default] = builders[conv.padding] = _conv(layer)
    norms = {3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}

    def batch_norm(args: dict[str, Any], weight: Any) -> Any:
        rank = len(args["input"].meta["val"].shape)
        if args["training"] or args["running_mean"] is None or rank not in norms:
            return None  # batch statistics baked into the graph: no layer reproduces that
        return norms[rank](args["running_mean"].meta["val"].shape[0], eps=args["eps"], momentum=args["momentum"],
                           affine=weight is not None, device="meta")

    builders[aten.batch_norm.default] = batch_norm
    return builders


def _call_args(node: Any) -> dict[str, Any]:
    """The node's arguments by schema name, defaults filled in."""
    values = {}
    for index, argument in enumerate(node.target._schema.arguments):
        if index < len(node.args):
            values[argument.name] = node.args[index]
        else:
            values[argument.name] = node.kwargs.get(argument.name, argument.default_value)
    return values


def _owner(graph_module: Any, tensors: dict[str, Any]) -> str | None:
    """The one plain container holding every tensor argument (as attribute `name`), used only here."""
    owners = set()
    for name, node in tensors.items():
        if getattr(node, "op", None) != "get_attr" or len(node.users) != 1:
            return None
        owner, _, attr = node.target.rpartition(".")
        if attr != name:
            return None
        owners.add(owner)
    if len(owners) != 1 or "" in owners:
        return None
    return owners.pop()


def _lift(model: Any, node: Any, build: Callable[[dict[str, Any], Any], Any]) -> bool:
    from torch import nn

    args = _call_args(node)
    tensors = {name: args[name] for name in _TENSORS if args.get(name) is not None}
    owner = _owner(model, tensors)
    if owner is None:
        return False
    container = model.get_submodule(owner)
    if type(container) is not nn.Module or list(container.children()):
        return False
    layer = build(args, getattr(container, "weight", None) if "weight" in tensors else None)
    state = container.state_dict(keep_vars=True)
    if layer is None or set(layer.state_dict()) != set(state):
        return False
    layer.load_state_dict(state, assign=True)  # the container's own tensors, not copies
    layer.train(container.training)
    parent, _, name = owner.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, layer)
    graph = model.graph
    with graph.inserting_before(node):
        call = graph.call_module(owner, (args["input"],))
    call.meta = dict(node.meta)
    node.replace_all_uses_with(call)
    graph.erase_node(node)
    for attr_node in tensors.values():
        graph.erase_node(attr_node)
    return True


def with_layer_modules(model: Any) -> Any:
    """A deep copy of `model` in which pruning tools find real layer modules.

    nn.Modules are copied as they are; an exported GraphModule gets its aten layer calls lifted into
    modules (parameter names and values unchanged, so the state dict is the same).
    """
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pytree deprecation noise from deep-copying exports
        model = copy.deepcopy(model)
    if not isinstance(model, torch.fx.GraphModule):
        return model
    builders = _builders()
    lifted = [_lift(model, node, builders[node.target]) for node in list(model.graph.nodes)
              if node.op == "call_function" and node.target in builders]
    if any(lifted):
        for node in [n for n in model.graph.nodes if n.op == "get_attr" and not n.users]:
            model.graph.erase_node(node)  # e.g. a batch norm's num_batches_tracked, now owned by its layer
        model.graph.lint()
        model.recompile()
    return model


def prunable_layers(model: Any) -> list[tuple[str, Any]]:
    """The (name, module) pairs of every Conv and Linear layer."""
    from torch import nn

    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    return [(name, module) for name, module in model.named_modules() if isinstance(module, kinds)]
