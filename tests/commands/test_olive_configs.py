"""Issue 14: published Olive CPU recipes run on a local model with `modelmill run --config C --model PATH`.

Each config below has the pass shape of one of Olive's own CPU examples that ModelMill runs (bench/olive_configs_run.py
runs the real files on the samples; bench/README.md has the table). They are written here in our own words, with a
hub id as the input model that ``--model`` replaces by the tiny test models, and local data where Olive's read a hub
data set. The output must load in ONNX Runtime and agree with the PyTorch model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from modelmill.cli import main

pytestmark = pytest.mark.slow

SENTENCES = ["the cat sat on the mat", "models run fast on a cpu", "hello world again and again"]


def _local_data(folder: Path, columns: list[str]) -> dict:
    rows = [{**{c: SENTENCES[(i + j) % 3] for j, c in enumerate(columns)}, "label": i % 2} for i in range(8)]
    (folder / "calib.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return {"name": "calib", "type": "HuggingfaceContainer",
            "load_dataset_config": {"data_name": "json", "data_files": "calib.jsonl", "split": "train"},
            "pre_process_data_config": {"input_cols": columns, "max_samples": 8}, "dataloader_config": {"batch_size": 1}}


def _run(config: dict, folder: Path, model: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = folder / "recipe.json"
    path.write_text(json.dumps(config))
    out = folder / "out"
    assert main(["run", "--config", str(path), "--model", str(model), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"--model: HfModel path '{config['input_model']['model_path']}' (input_model.model_path) replaced by" in err
    return out


def _embedding_cosine(onnx_file: Path, bert_dir: Path) -> float:
    """Lowest cosine over SENTENCES between mean-pooled hidden states of the ONNX model and of PyTorch."""
    import onnxruntime as ort
    import torch
    from transformers import AutoModel, AutoTokenizer

    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    enc = AutoTokenizer.from_pretrained(bert_dir)(SENTENCES, padding="max_length", max_length=128, truncation=True,
                                                  return_tensors="np")
    cosines = []
    model = AutoModel.from_pretrained(bert_dir).eval()
    for i in range(len(SENTENCES)):  # one at a time: a fixed-shape model takes batch 1
        feeds = {inp.name: (enc[inp.name][i:i + 1] if inp.name in enc else np.zeros_like(enc["input_ids"][:1]))
                 .astype(np.int64) for inp in session.get_inputs()}
        hidden = np.asarray(session.run(None, feeds)[0], dtype=np.float32)
        with torch.no_grad():
            ref = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).last_hidden_state.numpy()
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        a, b = (hidden * mask).sum(1)[0], (ref * mask).sum(1)[0]
        cosines.append(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))))
    return min(cosines)


def test_encoder_ptq_recipe(tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Olive's BERT PTQ on CPU: export, transformer fusions, quantization calibrated on the recipe's data (here a
    local file), session tuning on the same data, metadata; the evaluator's accuracy uses the `evaluate` names."""
    config = {
        "input_model": {"type": "HfModel", "model_path": "example-org/bert-base-paraphrase", "task": "feature-extraction"},
        "systems": {"here": {"type": "LocalSystem",
                             "accelerators": [{"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}]}},
        "data_configs": [_local_data(tmp_path, ["first", "second"])],
        "evaluators": {"ev": {"metrics": [{"name": "latency", "type": "latency", "data_config": "calib",
                                           "sub_types": [{"name": "avg", "priority": 1}]}]}},
        "evaluator": "ev", "host": "here", "target": "here",
        "passes": {
            "export": {"type": "OnnxConversion", "target_opset": 17},
            "fuse": {"type": "OrtTransformersOptimization"},
            "quant": {"type": "OnnxQuantization", "quant_preprocess": True, "per_channel": False,
                      "reduce_range": False, "calibrate_method": "MinMax", "data_config": "calib"},
            "tune": {"type": "OrtSessionParamsTuning", "data_config": "calib"},
            "meta": {"type": "AddOliveMetadata", "graph_name": "paraphrase"},
        },
    }
    out = _run(config, tmp_path, tiny_bert_dir, capsys)
    assert _embedding_cosine(next(out.glob("*.onnx")), tiny_bert_dir) >= 0.95  # int8


def test_encoder_fixed_shape_qdq_recipe(tiny_bert_dir: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Olive's BERT QDQ for NPUs, on CPU: export, fixed shape 1x128, graph surgeries, basic fusions, static QDQ
    quantization with 16-bit activations."""
    config = {
        "input_model": {"type": "HfModel", "model_path": "example-org/multilingual-encoder",
                        "task": "feature-extraction"},
        "data_configs": [_local_data(tmp_path, ["premise"])],
        "passes": {
            "export": {"type": "OnnxConversion", "target_opset": 20},
            "fixed": {"type": "DynamicToFixedShape", "dim_param": ["batch_size", "sequence_length"],
                      "dim_value": [1, 128]},
            "surgery": {"type": "GraphSurgeries", "surgeries": [
                {"surgeon": "ReplaceAttentionMaskValue", "replacement": -100.0}, {"surgeon": "MatMulAddToGemm"}]},
            "fuse": {"type": "OrtTransformersOptimization", "model_type": "bert", "opt_level": 1,
                     "optimization_options": {"enable_gelu": True, "enable_layer_norm": True,
                                              "enable_attention": False, "enable_skip_layer_norm": False}},
            "qdq": {"type": "OnnxStaticQuantization", "precision": "uint8", "activation_type": "uint16",
                    "data_config": "calib"},
        },
    }
    out = _run(config, tmp_path, tiny_bert_dir, capsys)
    model_file = next(out.glob("*.onnx"))
    import onnx

    graph = onnx.load(str(model_file), load_external_data=False).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.node}
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [1, 128]
    assert _embedding_cosine(model_file, tiny_bert_dir) >= 0.95


def test_llm_model_builder_recipe(tiny_llama_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Olive's phi-2 GenAI recipe: the ORT GenAI model builder at int4; the output loads in onnxruntime-genai and
    generates greedily, and its next-token choices mostly agree with PyTorch's."""
    import onnxruntime_genai as og
    import torch
    from transformers import AutoModelForCausalLM

    config = {"input_model": {"type": "HfModel", "model_path": "example-org/small-chat-llm"},
              "systems": {"here": {"type": "LocalSystem", "accelerators": [
                  {"device": "GPU", "execution_providers": ["CPUExecutionProvider"]}]}},
              "passes": {"builder": {"type": "ModelBuilder", "precision": "int4"}},
              "host": "here", "target": "here"}
    out = _run(config, tmp_path, tiny_llama_dir, capsys)
    ids = list(range(5, 21))
    model = og.Model(str(next(out.rglob("genai_config.json")).parent))
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + 8, do_sample=False)
    gen = og.Generator(model, params)
    gen.append_tokens(ids)
    logits = np.asarray(gen.get_output("logits"))
    logits = logits.reshape(-1, logits.shape[-1])
    while not gen.is_done():
        gen.generate_next_token()
    assert len(gen.get_sequence(0)) == len(ids) + 8
    with torch.no_grad():
        ref = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()(torch.tensor([ids])).logits[0].numpy()
    agreement = float((logits[-len(ids):].argmax(-1) == ref.argmax(-1)).mean())
    assert agreement >= 0.5, agreement  # int4 on a random tiny model: most, not all, choices survive
