"""Surgeons on quantized graphs: QDQ pairs, MatMulNBits, quantized and tied embeddings."""

from __future__ import annotations

from typing import Any

from modelmill.passes.surgeons import surgeon


def _graph(model: Any) -> Any:
    from modelmill.passes.surgeons.graph import Graph

    return Graph(model)


def _qdq_pairs(graph: Any) -> list[tuple[Any, Any]]:
    """(QuantizeLinear, DequantizeLinear) pairs where the DQ reads the Q's only output."""
    pairs = []
    for q in [n for n in graph.graph.node if n.op_type == "QuantizeLinear"]:
        for dq in graph.consumers(q.output[0]):
            if dq.op_type == "DequantizeLinear" and dq.input[0] == q.output[0]:
                pairs.append((q, dq))
    return pairs


def _clip_range(graph: Any, dq: Any) -> tuple[Any, Any]:
    """The float range a Q→DQ pair can represent: ((qmin - zp) * scale, (qmax - zp) * scale)."""
    import numpy as np

    scale = graph.array(dq.input[1])
    zero_point = graph.array(dq.input[2]) if len(dq.input) > 2 and dq.input[2] else None
    if scale is None or scale.size != 1:
        raise ValueError(f"{dq.name}: Clip needs a per-tensor constant scale")
    info = np.iinfo(zero_point.dtype if zero_point is not None else np.uint8)
    zp = int(zero_point.ravel()[0]) if zero_point is not None else 0
    s = float(scale.ravel()[0])
    return np.float32((info.min - zp) * s), np.float32((info.max - zp) * s)


def _replace_pair_with_clip(graph: Any, q: Any, dq: Any) -> None:
    import numpy as np

    low, high = _clip_range(graph, dq)
    graph.add_node("Clip", [q.input[0], graph.add_initializer(np.array(low), "clip_min"),
                            graph.add_initializer(np.array(high), "clip_max")], [dq.output[0]])
    graph.remove_node(dq)
    if not graph.consumers(q.output[0]):
        graph.remove_node(q)


@surgeon("RemoveQDQ", "Removes QuantizeLinear→DequantizeLinear pairs, wiring the float tensor through; with "
                      "keep_clip_after_inputs, pairs on graph inputs become Clip to keep their range.")
def remove_qdq(model: Any, keep_clip_after_inputs: bool = False) -> Any:
    graph = _graph(model)
    for q, dq in _qdq_pairs(graph):
        if keep_clip_after_inputs and graph.is_input(q.input[0]):
            _replace_pair_with_clip(graph, q, dq)
            continue
        if graph.is_output(dq.output[0]):
            graph.add_node("Identity", [q.input[0]], [dq.output[0]])
        else:
            graph.replace_uses(dq.output[0], q.input[0])
        graph.remove_node(dq)
        if not graph.consumers(q.output[0]) and not graph.is_output(q.output[0]):
            graph.remove_node(q)
    return model


@surgeon("QDQToClip", "Replaces QuantizeLinear→DequantizeLinear pairs with Clip to the range they represent "
                      "(keeps the value limits, drops the rounding).")
def qdq_to_clip(model: Any) -> Any:
    graph = _graph(model)
    for q, dq in _qdq_pairs(graph):
        _replace_pair_with_clip(graph, q, dq)
    return model


@surgeon("RemoveDeqLin", "Folds DequantizeLinear of constant weights into float32 initializers.")
def remove_deqlin(model: Any) -> Any:
    import numpy as np

    graph = _graph(model)
    for dq in [n for n in model.graph.node if n.op_type == "DequantizeLinear"]:
        x = graph.initializer(dq.input[0])
        scale = graph.array(dq.input[1])
        if x is None or scale is None:
            continue
        values = graph.array(dq.input[0]).astype(np.int32)
        zero = graph.array(dq.input[2]).astype(np.int32) if len(dq.input) > 2 and dq.input[2] else 0
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        if scale.ndim == 1 and scale.size > 1:  # per-axis: broadcast along axis
            shape = [1] * values.ndim
            shape[axis] = scale.size
            scale, zero = scale.reshape(shape), np.reshape(zero, shape) if np.ndim(zero) else zero
        folded = graph.add_initializer(((values - zero) * scale.astype(np.float32)).astype(np.float32),
                                       f"{dq.input[0]}_dequantized")
        graph.replace_uses(dq.output[0], folded, keep_outputs=graph.is_output(dq.output[0]))
        if graph.is_output(dq.output[0]):
            graph.add_node("Identity", [folded], [dq.output[0]])
        graph.remove_node(dq)
    graph.prune()
    return model


@surgeon("ExposeQuantizedOutput", "For a graph output produced by DequantizeLinear(QuantizeLinear(x)), outputs the "
                                  "quantized tensor instead, plus <output>_exposed_scale and "
                                  "<output>_exposed_zero_point outputs.")
def expose_quantized_output(model: Any, output_name: str) -> Any:
    import numpy as np
    import onnx

    graph = _graph(model)
    if not graph.is_output(output_name):
        raise ValueError(f"output_name: the model has no output {output_name!r}")
    dq = graph.producer(output_name)
    q = graph.producer(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
    if q is None or q.op_type != "QuantizeLinear":
        raise ValueError(f"output {output_name!r} is not produced by DequantizeLinear(QuantizeLinear(...))")
    scale, zero_point = graph.array(q.input[1]), graph.array(q.input[2])
    if scale is None or zero_point is None:
        raise ValueError(f"{q.name}: scale and zero point must be constants")
    shape = graph.shape(output_name)
    index = [o.name for o in model.graph.output].index(output_name)
    model.graph.output.pop(index)
    graph.remove_node(dq)
    model.graph.output.insert(index, onnx.helper.make_tensor_value_info(
        q.output[0], onnx.helper.np_dtype_to_tensor_dtype(zero_point.dtype), shape))
    for suffix, value in (("scale", np.array([scale.ravel()[0]], dtype=np.float32)),
                          ("zero_point", np.array([zero_point.ravel()[0]], dtype=zero_point.dtype))):
        name = f"{output_name}_exposed_{suffix}"
        source = graph.add_initializer(value, f"{name}_value")
        graph.add_node("Identity", [source], [f"{name}_output"])
        model.graph.output.append(onnx.helper.make_tensor_value_info(
            f"{name}_output", onnx.helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape)))
    return model


@surgeon("RemoveGidxFromMatMulNBits", "Drops the g_idx input of MatMulNBits nodes where it is sorted (no act-order), "
                                      "which ORT then need not apply.")
def remove_gidx_from_matmulnbits(model: Any) -> Any:
    import numpy as np

    graph = _graph(model)
    for node in model.graph.node:
        if node.op_type != "MatMulNBits" or len(node.input) < 5 or not node.input[4]:
            continue
        g_idx = graph.array(node.input[4])
        if g_idx is not None and np.all(np.diff(g_idx.ravel()) >= 0):
            del node.input[4:]
            while node.input and not node.input[-1]:
                del node.input[-1]
    graph.prune()
    return model


def _embedding_and_lm_head(graph: Any) -> tuple[Any, Any] | None:
    """(embedding Gather*, lm_head MatMul*) of a decoder: the node reading input_ids and the one writing logits."""
    source = next((name for name in ("input_ids", "input_embeds", "inputs_embeds") if graph.is_input(name)), None)
    if source is None or not graph.is_output("logits"):
        return None
    embed = next((n for n in graph.consumers(source) if n.op_type in ("Gather", "GatherBlockQuantized")
                  and graph.initializer(n.input[0]) is not None), None)
    head = graph.producer("logits")
    if embed is None or head is None or head.op_type not in ("MatMul", "MatMulNBits"):
        return None
    if graph.initializer(head.input[1]) is None:
        return None
    return embed, head


@surgeon("TieWordEmbeddings", "Makes the lm_head read the embedding's weight when both hold the same values "
                              "(plain Gather + MatMul, or GatherBlockQuantized + MatMulNBits), storing it once.")
def tie_word_embeddings(model: Any) -> Any:
    import numpy as np

    graph = _graph(model)
    found = _embedding_and_lm_head(graph)
    if found is None:
        return model
    embed, head = found
    if (embed.op_type, head.op_type) == ("Gather", "MatMul"):
        table, weight = graph.array(embed.input[0]), graph.array(head.input[1])
        if table.shape != weight.T.shape or not np.array_equal(table, weight.T):
            return model
        vocab, hidden = table.shape
        flat = graph.add_node("Reshape", [head.input[0], graph.add_initializer(np.array([-1, hidden], np.int64),
                                                                               "lm_head_rows")])
        gemm = graph.add_node("Gemm", [flat.output[0], embed.input[0]], transB=1)
        shape = graph.add_node("Shape", [head.input[0]])
        lead = graph.add_node("Slice", [shape.output[0], graph.add_initializer(np.array([0], np.int64), "start"),
                                        graph.add_initializer(np.array([-1], np.int64), "end")])
        target = graph.add_node("Concat", [lead.output[0], graph.add_initializer(np.array([vocab], np.int64),
                                                                                 "vocab")], axis=0)
        graph.add_node("Reshape", [gemm.output[0], target.output[0]], [head.output[0]])
        graph.remove_node(head)
    elif (embed.op_type, head.op_type) == ("GatherBlockQuantized", "MatMulNBits"):
        embed_consts = [embed.input[0], *embed.input[2:]]
        head_consts = list(head.input[1:])
        if len(embed_consts) != len(head_consts):
            return model
        for a, b in zip(embed_consts, head_consts):
            left, right = graph.array(a), graph.array(b)
            if left is None or right is None or left.size != right.size or not np.array_equal(left.ravel(),
                                                                                              right.ravel()):
                return model
        for i, name in enumerate(embed_consts[1:], start=2):
            head.input[i] = name
        packed_shape = np.array(graph.initializer(head.input[1]).dims, np.int64)
        reshape = graph.add_node("Reshape", [embed.input[0], graph.add_initializer(packed_shape, "tied_shape")])
        head.input[1] = reshape.output[0]
    graph.prune()
    return model


@surgeon("QuantizeEmbeddingInt8", "Quantizes the float embed_tokens Gather table to INT8 (blocks of 32 along the "
                                  "hidden size) as com.microsoft GatherBlockQuantized.")
def quantize_embedding_int8(model: Any) -> Any:
    import numpy as np
    import onnx

    graph = _graph(model)
    gather = next((n for n in model.graph.node if n.op_type == "Gather" and "embed_tokens" in n.name), None)
    if gather is None or graph.initializer(gather.input[0]) is None:
        return model
    init = graph.initializer(gather.input[0])
    if init.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
        return model
    table = graph.array(gather.input[0]).astype(np.float32)
    vocab, hidden = table.shape
    block = 32
    if hidden % block:
        raise ValueError(f"QuantizeEmbeddingInt8: hidden size {hidden} is not a multiple of the block size 32")
    blocks = table.reshape(vocab, hidden // block, block)
    scale_dtype = np.float16 if init.data_type == onnx.TensorProto.FLOAT16 else np.float32
    scales = (np.abs(blocks).max(axis=2) / 127.0).astype(scale_dtype)
    safe = np.where(scales.astype(np.float32) == 0, 1.0, scales.astype(np.float32))
    quantized = np.clip(np.round(blocks / safe[:, :, None]), -128, 127).astype(np.int16) + 128
    weight = graph.add_initializer(quantized.astype(np.uint8).reshape(vocab, hidden), f"{gather.input[0]}_Q8")
    scale_name = graph.add_initializer(scales, f"{gather.input[0]}_scales")
    zero = graph.add_initializer(np.full((vocab, hidden // block), 128, np.uint8), f"{gather.input[0]}_zp")
    _ensure_msft_opset(model)
    node = graph.add_node("GatherBlockQuantized", [weight, gather.input[1], scale_name, zero], list(gather.output),
                          domain="com.microsoft", bits=8, block_size=block, gather_axis=0, quantize_axis=1)
    node.name = gather.name.replace("Gather", "GatherBlockQuantized")
    graph.remove_node(gather)
    graph.prune()
    return model


@surgeon("ShareEmbeddingLmHead", "After QuantizeEmbeddingInt8: makes the lm_head an INT8 MatMulNBits reading the "
                                 "embedding's quantized table, scales and zero points, storing them once.")
def share_embedding_lm_head(model: Any) -> Any:
    import numpy as np
    import onnx

    graph = _graph(model)
    gbq = next((n for n in model.graph.node if n.op_type == "GatherBlockQuantized" and "embed_tokens" in n.name), None)
    head = next((n for n in model.graph.node if n.op_type == "MatMulNBits" and "lm_head" in n.name), None)
    if gbq is None or head is None or graph.initializer(gbq.input[0]) is None:
        return model
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in gbq.attribute}
    if attrs.get("bits", 4) != 8:
        raise ValueError("ShareEmbeddingLmHead needs an INT8 GatherBlockQuantized embedding: run "
                         "QuantizeEmbeddingInt8 first")
    block = attrs.get("block_size", 32)
    vocab, hidden = graph.initializer(gbq.input[0]).dims
    shape = graph.add_initializer(np.array([vocab, hidden // block, block], np.int64), "lm_head_shared_shape")
    reshaped = graph.add_node("Reshape", [gbq.input[0], shape])
    inputs = [head.input[0], reshaped.output[0], gbq.input[2], *gbq.input[3:4]]
    accuracy = [a for a in head.attribute if a.name == "accuracy_level"]
    new = graph.add_node("MatMulNBits", inputs, list(head.output), domain="com.microsoft", bits=8,
                         block_size=block, K=hidden, N=vocab)
    new.attribute.extend(accuracy)
    graph.remove_node(head)
    graph.prune()
    return model


def _ensure_msft_opset(model: Any) -> None:
    import onnx

    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
