"""Shared fixtures: tiny Llama and BERT models built at test time (no downloads), and their ONNX exports."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# Every test starts in an empty working folder of its own session, not in the checkout: checks that look at the
# file system relative to the working folder (an output_dir "out" that exists, a default .olive-cache) must not
# depend on what a developer's checkout holds (TypeScript's out/, earlier runs' models/). Done at import time,
# before test modules build their Environment objects (whose cwd is read then).
_WORKING_FOLDER = tempfile.mkdtemp(prefix="modelmill-tests-")
os.chdir(_WORKING_FOLDER)
atexit.register(shutil.rmtree, _WORKING_FOLDER, ignore_errors=True)

from helpers import make_context  # noqa: E402
from modelmill.engine.model import ModelRef  # noqa: E402

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
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

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


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded 2-layer LlamaForCausalLM (hidden 64, 4 heads, 2 KV heads) with a BPE tokenizer, as an HF folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny_llama")
    save_bpe_tokenizer(out)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB_SIZE, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=128, max_position_embeddings=256,
                         bos_token_id=1, eos_token_id=2, pad_token_id=3, tie_word_embeddings=False)
    LlamaForCausalLM(config).eval().save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded 2-layer BertModel (hidden 64, 4 heads) with a WordPiece tokenizer, as an HF folder."""
    import torch
    from transformers import BertConfig, BertModel

    out = tmp_path_factory.mktemp("tiny_bert")
    save_wordpiece_tokenizer(out)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=VOCAB_SIZE, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=128, pad_token_id=0)
    BertModel(config).eval().save_pretrained(str(out))
    return out


def _convert(hf_dir: Path, tmp_path_factory: pytest.TempPathFactory, name: str) -> ModelRef:
    from modelmill.passes.onnx_conversion import OnnxConversion

    ctx = make_context(tmp_path_factory.mktemp(name), name)
    return OnnxConversion().run(ModelRef(kind="hf", path=hf_dir), OnnxConversion.Params(), ctx)


@pytest.fixture(scope="session")
def tiny_llama_onnx(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ModelRef:
    """tiny_llama_dir exported by OnnxConversion (input_ids, attention_mask → logits)."""
    return _convert(tiny_llama_dir, tmp_path_factory, "tiny_llama_onnx")


@pytest.fixture(scope="session")
def tiny_bert_onnx(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ModelRef:
    """tiny_bert_dir exported by OnnxConversion (input_ids, attention_mask, token_type_ids → last_hidden_state)."""
    return _convert(tiny_bert_dir, tmp_path_factory, "tiny_bert_onnx")


@pytest.fixture(scope="session")
def tiny_llama_genai(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ModelRef:
    """tiny_llama_dir built by onnxruntime-genai's model builder (int4, CPU): MatMulNBits, GroupQueryAttention,
    past_key_values inputs, external data and genai_config.json."""
    import subprocess

    out = tmp_path_factory.mktemp("tiny_llama_genai")
    cache = tmp_path_factory.mktemp("builder_cache")
    subprocess.run([sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(tiny_llama_dir), "-o", str(out),
                    "-p", "int4", "-e", "cpu", "-c", str(cache)], check=True, capture_output=True)
    return ModelRef(kind="onnx", path=out)
