"""ModelBuilder's hook for a quantized input embedding (an rtn checkpoint with ``embeds: true``).

onnxruntime-genai 0.18's Olive loader reads quantized Linear layers but not a quantized embedding table, and its
own ``GatherBlockQuantized`` path only reuses a *tied* LM head's weights. Olive 0.13 patches the builder's
``make_embedding`` so the stored codes become a ``com.microsoft`` ``GatherBlockQuantized`` (2-D packed codes, 2-D
scales, packed zero points when asymmetric); GraphSurgeries ``TieWordEmbeddings`` then lets the LM head's
``MatMulNBits`` read that one copy. This does the same for the length of one build: the embedding keeps the
checkpoint's very codes instead of a float table (fp32 on CPU: ``vocab x hidden x 4`` bytes).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from modelmill.engine.context import PassContext
from modelmill.quant.weights import QuantizedWeight

QWEIGHT, SCALES, QZEROS = "model.embed_tokens.qweight", "model.embed_tokens.scales", "model.embed_tokens.qzeros"


@contextlib.contextmanager
def quantized_embedding(builder: Any, stored: QuantizedWeight | None, ctx: PassContext) -> Iterator[None]:
    """Make the builder emit ``GatherBlockQuantized`` over ``stored`` instead of a float ``Gather``.

    Without ``stored``, or where the builder has no ``make_embedding_lookup`` (another version), the build is
    left as it is: the embedding is then the float table of the same values (``checkpoint.builder_view``).
    """
    model_cls = getattr(builder, "Model", None)
    inner = getattr(model_cls, "make_embedding_lookup", None)
    if stored is None:
        yield
        return
    if not callable(inner) or stored.spec.group_size == -1:
        ctx.warn("ModelBuilder: the quantized embedding is written as a float table (this builder version has no "
                 "embedding hook, or the table has one scale per row)")
        yield
        return

    def make_embedding_lookup(self: Any, embedding: Any, basename: str, lm_head: Any) -> str:
        if getattr(self, "tied_quantized_embeddings", False) or getattr(self, "tied_unquantized_embeddings", False):
            return inner(self, embedding, basename, lm_head)  # the builder shares the LM head's weights itself
        rows = int(stored.qweight.shape[0])
        self.make_initializer(stored.qweight.reshape(rows, -1).contiguous(), QWEIGHT)
        self.make_initializer(stored.scales.contiguous(), SCALES, to=self.io_dtype)
        inputs = [QWEIGHT, self.input_names["input_ids"], SCALES]
        if stored.qzeros is not None:  # symmetric: ORT's default zero point is the middle code, as stored
            self.make_initializer(stored.qzeros.contiguous(), QZEROS)
            inputs.append(QZEROS)
        name = f"{basename}/GatherBlockQuantized"
        self.make_node("GatherBlockQuantized", inputs=inputs, outputs=[f"{name}/output_0"], name=name,
                       domain="com.microsoft", bits=stored.spec.bits, block_size=stored.spec.group_size,
                       gather_axis=0, quantize_axis=1)
        return f"{name}/output_0"

    model_cls.make_embedding_lookup = make_embedding_lookup
    try:
        yield
    finally:
        model_cls.make_embedding_lookup = inner
