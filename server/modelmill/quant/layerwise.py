"""Layer-by-layer calibration: the decoder layers' inputs captured once, then each layer run on them in turn.

Olive's ``run_layerwise_quantization``: the calibration batches go through the embeddings up to the first decoder
layer (stopped there), then every layer sees the outputs of the already-quantized layers before it, so each
layer's quantization corrects for the error upstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from modelmill.quant.checkpoint import Structure


class _Stop(Exception):
    """Raised by the hook on the first decoder layer once its inputs are captured."""


@dataclass
class LayerInputs:
    hidden: list[torch.Tensor]
    args: list[tuple[Any, ...]]
    kwargs: list[dict[str, Any]]


@torch.no_grad()
def first_layer_inputs(model: Any, names: Structure, batches: list[dict[str, torch.Tensor]]) -> LayerInputs:
    captured = LayerInputs([], [], [])

    def hook(_: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if kwargs.get("hidden_states") is not None:
            args = (kwargs.pop("hidden_states"), *args)
        kwargs = {k: v for k, v in kwargs.items() if k not in ("past_key_value", "past_key_values")}
        captured.hidden.append(args[0])
        captured.args.append(args[1:])
        captured.kwargs.append(kwargs)
        raise _Stop

    handle = names.layers[0].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        for batch in batches:
            try:
                model(**batch, use_cache=False)
            except _Stop:
                pass
    finally:
        handle.remove()
    return captured


@torch.no_grad()
def run_layer(layer: torch.nn.Module, inputs: LayerInputs) -> list[torch.Tensor]:
    outputs = []
    for hidden, args, kwargs in zip(inputs.hidden, inputs.args, inputs.kwargs):
        out = layer(hidden, *args, **kwargs)
        outputs.append(out[0] if isinstance(out, (tuple, list)) else out)
    return outputs


def quantize_layerwise(model: Any, names: Structure, batches: list[dict[str, torch.Tensor]],
                       targets: set[str], observe: Callable[[torch.nn.Module, tuple[Any, ...], Any], None],
                       process: Callable[[str, torch.nn.Module], None],
                       step: Callable[[int, int, str], None]) -> None:
    """For each layer: observe the target modules' inputs (``observe`` as a forward hook), ``process`` each target,
    then compute the layer's outputs with its new weights for the next layer. The LM head comes last when it is a
    target (its inputs: the final norm of the last layer's outputs)."""
    use_cache = getattr(model.config, "use_cache", None)
    model.config.use_cache = False
    try:
        inputs = first_layer_inputs(model, names, batches)
        total = len(names.layers) + (1 if names.lm_head in targets else 0)
        for index, layer in enumerate(names.layers):
            prefix = f"{names.layers_name}.{index}."
            modules = {prefix + name: module for name, module in layer.named_modules() if prefix + name in targets}
            step(index, total, f"layer {index + 1}/{len(names.layers)}")
            handles = [module.register_forward_hook(observe) for module in modules.values()]
            try:
                run_layer(layer, inputs)
            finally:
                for handle in handles:
                    handle.remove()
            for name, module in modules.items():
                process(name, module)
            inputs = LayerInputs(run_layer(layer, inputs), inputs.args, inputs.kwargs)
        if names.lm_head in targets:
            step(total - 1, total, "lm_head")
            norm = model.get_submodule(names.final_norm) if names.final_norm else torch.nn.Identity()
            head = model.get_submodule(names.lm_head)
            handle = head.register_forward_hook(observe)
            try:
                with torch.no_grad():
                    for hidden in inputs.hidden:
                        head(norm(hidden))
            finally:
                handle.remove()
            process(names.lm_head, head)
    finally:
        if use_cache is not None:
            model.config.use_cache = use_cache
