"""Surgeons for decoder LLM graphs: rotary embeddings, GroupQueryAttention inputs, packed attention."""

from __future__ import annotations

from typing import Any

from modelmill.passes.surgeons import surgeon


def _graph(model: Any) -> Any:
    from modelmill.passes.surgeons.graph import Graph

    return Graph(model)


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


@surgeon("DecomposeRotaryEmbedding", "Replaces com.microsoft RotaryEmbedding on 4-D (batch, heads, seq, head_size) "
                                     "inputs, non-interleaved, full rotary dim, with Gather/Slice/Mul/Concat.")
def decompose_rotary_embedding(model: Any) -> Any:
    import numpy as np

    graph = _graph(model)
    for node in [n for n in model.graph.node if n.op_type == "RotaryEmbedding" and n.domain == "com.microsoft"]:
        attrs = _attrs(node)
        shape = graph.shape(node.input[0])
        if attrs.get("interleaved", 0) or attrs.get("rotary_embedding_dim", 0) or (shape and len(shape) != 4):
            raise ValueError(f"{node.name}: DecomposeRotaryEmbedding handles 4-D, non-interleaved, full-dim rotary "
                             "embeddings; leave this model's RotaryEmbedding to ORT (drop the surgeon)")
        x, positions, cos_cache, sin_cache = node.input[:4]
        const = lambda values, base: graph.add_initializer(np.array(values, np.int64), base)
        if attrs.get("scale", 1.0) != 1.0:
            x = graph.add_node("Mul", [x, graph.add_initializer(np.array(attrs["scale"], np.float32), "rope_scale")]
                               ).output[0]
        flat = graph.add_node("Reshape", [positions, const([-1], "rope_flat")]).output[0]
        shape_x = graph.add_node("Shape", [x]).output[0]
        batch = graph.add_node("Gather", [shape_x, const([0], "rope_b")], axis=0).output[0]
        seq = graph.add_node("Gather", [shape_x, const([2], "rope_s")], axis=0).output[0]
        last = graph.add_node("Gather", [shape_x, const([-1], "rope_h")], axis=0).output[0]
        half = graph.add_node("Div", [last, const([2], "rope_two")]).output[0]
        target = graph.add_node("Concat", [batch, const([1], "rope_one"), seq, half], axis=0).output[0]
        cos = graph.add_node("Reshape", [graph.add_node("Gather", [cos_cache, flat], axis=0).output[0], target])
        sin = graph.add_node("Reshape", [graph.add_node("Gather", [sin_cache, flat], axis=0).output[0], target])
        axes = const([-1], "rope_axes")
        real = graph.add_node("Slice", [x, const([0], "rope_start"), half, axes]).output[0]
        imag = graph.add_node("Slice", [x, half, last, axes]).output[0]
        mul = lambda a, b: graph.add_node("Mul", [a, b]).output[0]
        out_real = graph.add_node("Sub", [mul(real, cos.output[0]), mul(imag, sin.output[0])]).output[0]
        out_imag = graph.add_node("Add", [mul(real, sin.output[0]), mul(imag, cos.output[0])]).output[0]
        graph.add_node("Concat", [out_real, out_imag], [node.output[0]], axis=-1)
        graph.remove_node(node)
    return model


def _first(model: Any, op_types: set[str]) -> Any:
    return next((n for n in model.graph.node if n.op_type in op_types), None)


@surgeon("RemoveRopeMultiCache", "Where an If picks between small and large cos/sin caches (LongRoPE), keeps one "
                                 "cache (cos_cache_large/... with use_large_cache, else *_small) as an initializer.")
def remove_rope_multi_cache(model: Any, use_large_cache: bool = False) -> Any:
    graph = _graph(model)
    first = _first(model, {"GroupQueryAttention", "RotaryEmbedding"})
    if first is None:
        return model
    indices = (7, 8) if first.op_type == "GroupQueryAttention" else (2, 3)
    if len(first.input) <= max(indices):
        return model
    caches = {"cos_cache": first.input[indices[0]], "sin_cache": first.input[indices[1]]}
    producers = {key: graph.producer(name) for key, name in caches.items()}
    if any(p is None or p.op_type != "If" for p in producers.values()):
        return model
    for key, name in caches.items():
        chosen = f"{key}_{'large' if use_large_cache else 'small'}"
        value = graph.array(chosen)
        if value is None:
            raise ValueError(f"RemoveRopeMultiCache: no constant {chosen!r} in the model")
        single = graph.add_initializer(value, f"{key}_single")
        graph.replace_uses(name, single)
    graph.prune()
    return model


@surgeon("AttentionMaskToSequenceLengths", "In GroupQueryAttention models, replaces the attention_mask subgraph "
                                           "with int32 inputs past_seq_len [batch, 1] and total_seq_len [].")
def attention_mask_to_sequence_lengths(model: Any) -> Any:
    import onnx

    graph = _graph(model)
    first = _first(model, {"GroupQueryAttention"})
    if first is None or not graph.is_input("attention_mask"):
        return model
    names = {"past_seq_len": first.input[5], "total_seq_len": first.input[6]}
    if any(graph.is_input(name) for name in names.values()):
        return model
    batch = (graph.shape("input_ids") or ["batch_size"])[0]
    shapes = {"past_seq_len": [batch, 1], "total_seq_len": []}
    for key, name in names.items():
        model.graph.input.append(onnx.helper.make_tensor_value_info(key, onnx.TensorProto.INT32, shapes[key]))
        for node in model.graph.node:
            if node.op_type == "GroupQueryAttention":
                node.input[:] = [key if inp == name else inp for inp in node.input]
    mask = next(v for v in model.graph.input if v.name == "attention_mask")
    graph.prune()
    if not graph.consumers("attention_mask"):
        model.graph.input.remove(mask)
    return model


_PACKED = ("custom::PackedAttention is an op of Olive's own vision-encoder export, which ModelMill does not produce; "
           "keep the model's attention as exported (drop this surgery)")


@surgeon("PackedAttentionToLoopMHA", "Olive: expands custom::PackedAttention into a Loop of MultiHeadAttention.",
         refused=_PACKED)
def packed_attention_to_loop_mha(model: Any) -> Any:
    return model


@surgeon("PackedAttentionToPackedMHA", "Olive: replaces custom::PackedAttention with PackedMultiHeadAttention "
                                       "(a CUDA-only ORT op).",
         refused="it produces com.microsoft PackedMultiHeadAttention, which ONNX Runtime only runs on CUDA; "
                 + _PACKED)
def packed_attention_to_packed_mha(model: Any) -> Any:
    return model
