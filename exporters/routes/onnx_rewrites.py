"""Graph rewrites that let the ONNX bridges' converters take a model.

`REWRITES`: onnx2fx's FX graph for torch.export and XNNPACK (each takes and returns a torch.fx.GraphModule,
rewritten in place), in the order the Keras/SavedModel -> ExecuTorch bridge applies them.
`ONNX_TO_TF_REWRITES`: the ONNX graph (ModelProto, rewritten in place) before onnx2tf, for PyTorch -> TF.js.
"""

from __future__ import annotations

from typing import Any

# onnx2fx helpers whose shape/axes argument may be a Python list (they call .tolist() on a tensor);
# a list lets torch.export specialize the shape instead of reading a lifted buffer's values.
_SHAPE_ARG_FUNCTIONS = frozenset({"_reshape", "_expand", "_tile", "_dynamic_slice", "_squeeze_dynamic",
                                  "_unsqueeze_dynamic", "_split_with_sizes", "_constant_of_shape", "_pad_impl"})


def inline_shape_constants(module: Any) -> Any:
    """Turn small integer buffers that only feed shape arguments into Python lists (for torch.export)."""
    for node in list(module.graph.nodes):
        if node.op != "get_attr":
            continue
        value = getattr(module, node.target)
        if not hasattr(value, "is_floating_point") or value.is_floating_point() or value.numel() > 64 or not all(
            user.op == "call_function" and getattr(user.target, "__name__", "") in _SHAPE_ARG_FUNCTIONS
            for user in node.users
        ):
            continue
        for user in list(node.users):
            user.args = tuple(value.tolist() if arg is node else arg for arg in user.args)
            user.kwargs = {k: value.tolist() if arg is node else arg for k, arg in user.kwargs.items()}
        module.graph.erase_node(node)
        delattr(module, node.target)
    module.graph.lint()
    module.recompile()
    return module


def gemm_to_linear(module: Any) -> Any:
    """Rewrite onnx2fx's Gemm (matmul, scale, add) on a constant weight as F.linear.

    XNNPACK then sees a fully-connected layer, and PT2E quantizes it (dynamic int8 only matches linear).
    """
    import torch

    for node in list(module.graph.nodes):
        if node.op != "call_function" or getattr(node.target, "__name__", "") != "_gemm":
            continue
        a, b, c, alpha, beta, trans_a, trans_b = node.args
        constant = all(getattr(t, "op", "") == "get_attr" for t in (b, *([c] if c is not None else [])))
        if alpha != 1.0 or beta != 1.0 or trans_a or not constant or len(b.users) != 1:
            continue
        if c is not None and getattr(module, c.target).dim() != 1:  # linear's bias is [out]
            continue
        weight = getattr(module, b.target)
        module.register_buffer(b.target, weight if trans_b else weight.t().contiguous())  # linear takes [out, in]
        with module.graph.inserting_before(node):
            linear = module.graph.call_function(torch.nn.functional.linear, (a, b, c))
        node.replace_all_uses_with(linear)
        module.graph.erase_node(node)
    module.recompile()
    return module


def scalar_clamp_bounds(module: Any) -> Any:
    """Turn one-element constant clamp bounds (ONNX Clip's min/max inputs, e.g. ReLU6) into Python floats.

    With tensor bounds torch.export emits aten.clamp.Tensor, which XNNPACK does not take; float bounds
    give aten.clamp.default (or hardtanh), which it does.
    """
    import torch

    folded = set()
    for node in list(module.graph.nodes):
        if node.op != "call_function" or node.target is not torch.clamp:
            continue
        kwargs = dict(node.kwargs)
        for key in ("min", "max"):
            bound = kwargs.get(key)
            if getattr(bound, "op", "") == "get_attr" and getattr(module, bound.target).numel() == 1:
                kwargs[key] = float(getattr(module, bound.target).item())
                folded.add(bound)
        node.kwargs = kwargs
    still_read = {node.target for node in module.graph.nodes if node.op == "get_attr" and node.users}
    for bound in folded:
        if not bound.users:
            module.graph.erase_node(bound)
            if bound.target not in still_read and hasattr(module, bound.target):
                delattr(module, bound.target)
    module.recompile()
    return module


def channels_first_global_mean(module: Any) -> Any:
    """Rewrite transpose(NCHW -> NHWC) + mean over axes [1, 2] as a mean over NCHW's last two axes.

    That is how Keras' GlobalAveragePooling2D arrives through tf2onnx and onnx2fx. XNNPACK only takes a
    4-D mean over the last two axes with keepdim, so the original stays on portable kernels.
    """
    import torch

    for node in list(module.graph.nodes):
        if node.op != "call_function" or getattr(node.target, "__name__", "") != "_reduce_mean":
            continue
        source, axes, keepdims = node.args[0], node.args[1], node.args[2]
        if not (isinstance(axes, (list, tuple)) and sorted(axes) == [1, 2]
                and getattr(source, "target", None) is torch.permute and list(source.args[1]) == [0, 2, 3, 1]):
            continue
        with module.graph.inserting_before(node):
            pooled = module.graph.call_function(torch.mean, (source.args[0], [2, 3]), {"keepdim": True})
            result = (module.graph.call_function(torch.permute, (pooled, [0, 2, 3, 1])) if keepdims
                      else module.graph.call_function(torch.flatten, (pooled, 1)))
        node.replace_all_uses_with(result)
        module.graph.erase_node(node)
        if not source.users:
            module.graph.erase_node(source)
    module.recompile()
    return module


REWRITES = (inline_shape_constants, gemm_to_linear, scalar_clamp_bounds, channels_first_global_mean)


def reduce_l2_as_sum_of_squares(model_proto: Any) -> Any:
    """Rewrite ReduceL2(x, axes) as Sqrt(ReduceSum(x * x, axes)), same attributes.

    onnx2tf 1.28 hands ReduceL2's axis to tf.norm as a numpy integer, which tf.norm refuses ("'axis' must be
    None, an integer, or a tuple of 2 unique integers"); F.normalize (an L2-normalized embedding) exports as it.
    """
    from onnx import helper

    graph = model_proto.graph
    nodes = []
    for node in graph.node:
        if node.op_type != "ReduceL2":
            nodes.append(node)
            continue
        square, summed = f"{node.name}_square", f"{node.name}_sum_of_squares"
        reduce = helper.make_node("ReduceSum", [square, *node.input[1:]], [summed], name=summed)
        reduce.attribute.extend(node.attribute)  # keepdims, noop_with_empty_axes mean the same for ReduceSum
        nodes += [helper.make_node("Mul", [node.input[0], node.input[0]], [square], name=square), reduce,
                  helper.make_node("Sqrt", [summed], list(node.output), name=node.name)]
    del graph.node[:]
    graph.node.extend(nodes)
    return model_proto


ONNX_TO_TF_REWRITES = (reduce_l2_as_sum_of_squares,)
