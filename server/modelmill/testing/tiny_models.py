"""Tiny models built locally (no downloads): a seeded 2-layer Llama with a byte-level BPE tokenizer and a
seeded 2-layer BERT with a WordPiece tokenizer, both trained on text shipped with Python (the pydoc topics);
the Llama built by onnxruntime-genai's model builder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHAT_TEMPLATE = ("{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}{{ eos_token }}"
                 "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
VOCAB_SIZE = 512


def corpus() -> list[str]:
    """Local English text shipped with Python itself (the pydoc topics)."""
    from pydoc_data.topics import topics

    return [topics[key] for key in sorted(topics)]


def _save_tokenizer(tokenizer: object, out: Path, special: dict[str, str]) -> None:
    """Save as a PreTrainedTokenizerFast folder with a chat template and special_tokens_map.json."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **special)
    fast.save_pretrained(str(out))
    config_file = out / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["chat_template"] = CHAT_TEMPLATE
    config_file.write_text(json.dumps(config, indent=2))
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2))


def save_bpe_tokenizer(out: Path) -> None:
    """A byte-level BPE tokenizer (Llama/GPT style) trained on the pydoc topics."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(corpus(), trainer)
    _save_tokenizer(tokenizer, out, {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                                     "pad_token": "<pad>"})


def save_wordpiece_tokenizer(out: Path) -> None:
    """A BERT-style WordPiece tokenizer trained on the pydoc topics."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=VOCAB_SIZE, special_tokens=specials, show_progress=False)
    tokenizer.train_from_iterator(corpus(), trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", specials.index("[CLS]")), ("[SEP]", specials.index("[SEP]"))])
    _save_tokenizer(tokenizer, out, {"unk_token": "[UNK]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                                     "sep_token": "[SEP]", "mask_token": "[MASK]"})


def build_tiny_llama(out: Path) -> Path:
    """A seeded 2-layer LlamaForCausalLM (hidden 64, 4 heads, 2 KV heads) with a BPE tokenizer, as an HF folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    save_bpe_tokenizer(out)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB_SIZE, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=128, max_position_embeddings=256,
                         bos_token_id=1, eos_token_id=2, pad_token_id=3, tie_word_embeddings=False)
    LlamaForCausalLM(config).eval().save_pretrained(str(out))
    return out


def build_tiny_bert(out: Path) -> Path:
    """A seeded 2-layer BertModel (hidden 64, 4 heads) with a WordPiece tokenizer, as an HF folder."""
    import torch
    from transformers import BertConfig, BertModel

    out.mkdir(parents=True, exist_ok=True)
    save_wordpiece_tokenizer(out)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=VOCAB_SIZE, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=128, pad_token_id=0)
    BertModel(config).eval().save_pretrained(str(out))
    return out


def build_genai(hf_dir: Path, out: Path, cache: Path, precision: str = "int4") -> Path:
    """``hf_dir`` built by onnxruntime-genai's model builder (CPU) into ``out``: MatMulNBits (int4),
    GroupQueryAttention, past_key_values inputs, external data and genai_config.json."""
    subprocess.run([sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf_dir), "-o", str(out),
                    "-p", precision, "-e", "cpu", "-c", str(cache)], check=True, capture_output=True)
    return out


def build_tiny_mlp_onnx(out: Path, width: int = 128) -> Path:
    """A seeded two-MatMul ONNX model (``x[batch, width]`` → MatMul → Relu → MatMul) in ``out/model.onnx``: an ONNX
    input whose passes (DynamicToFixedShape, block-wise RTN with block sizes up to ``width``) need no torch or
    model builder import, for tests about the engine rather than the passes."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((width, width)).astype(np.float32) / width ** 0.5,
                                       name) for name in ("w1", "w2")]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["y"], name="mm2")], "tiny_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out / "model.onnx"))
    return out
