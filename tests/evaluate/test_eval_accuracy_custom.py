"""Classification accuracy on local JSONL data (HF and ONNX classifiers) and custom metrics from a user script."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelmill.engine.model import ModelRef
from modelmill.evaluate import evaluate_model
from modelmill.evaluate.accuracy import classification_scores, predict, predictions
from modelmill.evaluate.runtime import EvaluationError, local_sentences

ACCURACY = {"name": "accuracy", "type": "accuracy", "data_config": "local_dev",
            "sub_types": [{"name": n} for n in ("accuracy_score", "f1_score", "precision", "recall")]}


def test_classification_scores_by_hand() -> None:
    preds, labels = np.array([1, 1, 0, 0, 1, 0]), np.array([1, 0, 0, 1, 1, 0])
    binary = classification_scores(preds, labels)
    assert binary == pytest.approx({"accuracy_score": 4 / 6, "precision": 2 / 3, "recall": 2 / 3, "f1_score": 2 / 3})
    preds, labels = np.array([0, 1, 2, 2, 1, 0]), np.array([0, 1, 1, 2, 2, 2])
    micro = classification_scores(preds, labels)
    assert list(micro.values()) == pytest.approx([0.5] * 4)
    macro = classification_scores(preds, labels, average="macro")
    # per class precision 1/2, 1/2, 1/2; recall 1, 1/2, 1/3
    assert macro["precision"] == pytest.approx(0.5)
    assert macro["recall"] == pytest.approx((1 + 0.5 + 1 / 3) / 3)
    weighted = classification_scores(preds, labels, average="weighted")
    assert weighted["recall"] == pytest.approx(0.5)  # weighted recall is plain accuracy


@pytest.fixture(scope="module")
def classifier(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelRef, ModelRef]:
    """A tiny BertForSequenceClassification (2 labels) as an HF folder and as its ONNX export."""
    import shutil

    import torch
    from helpers import make_context
    from transformers import BertConfig, BertForSequenceClassification

    from modelmill.passes.onnx_conversion import OnnxConversion

    out = tmp_path_factory.mktemp("tiny_classifier")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(tiny_bert_dir / name, out / name)
    torch.manual_seed(3)
    config = BertConfig(vocab_size=512, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=2,
                        id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    BertForSequenceClassification(config).eval().save_pretrained(str(out))
    hf = ModelRef("hf", out, attributes={"task": "text-classification"})
    onnx = OnnxConversion().run(hf, OnnxConversion.Params(), make_context(tmp_path_factory.mktemp("cls"), "conv"))
    return hf, onnx


def test_accuracy_on_local_jsonl(classifier: tuple[ModelRef, ModelRef], tmp_path: Path) -> None:
    hf, onnx = classifier
    texts = local_sentences(16)
    preds = predictions(predict(hf, [[t] for t in texts]))
    # labels: the model's own predictions, then the first 4 flipped (as label names, mapped through label2id)
    names = ["negative", "positive"]
    labels = [int(p) if i >= 4 else 1 - int(p) for i, p in enumerate(preds)]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dev.jsonl").write_text(
        "\n".join(json.dumps({"sentence": t, "label": names[y]}) for t, y in zip(texts, labels)))
    data_configs = {"local_dev": {"name": "local_dev", "type": "HuggingfaceContainer",
                                  "load_dataset_config": {"params": {"data_name": "json",
                                                                     "data_files": "data/dev.jsonl"}},
                                  "pre_process_data_config": {"params": {"input_cols": ["sentence"],
                                                                         "label_col": "label", "max_length": 64}}}}
    expected = classification_scores(preds, np.array(labels))
    assert expected["accuracy_score"] == pytest.approx(12 / 16)
    for model in (hf, onnx):
        result = evaluate_model(model, [ACCURACY], data_configs=data_configs, base_dir=tmp_path)
        assert {v.sub_type: v.value for v in result.values} == pytest.approx(expected)
        assert all(v.higher_is_better for v in result.values)
    # Olive's huggingface_metrics backend names `evaluate` metrics (bert_ptq_cpu.json: accuracy, f1): the same scores
    hf_metrics = {**ACCURACY, "backend": "huggingface_metrics",
                  "sub_types": [{"name": "accuracy", "priority": 1}, {"name": "f1"}]}
    result = evaluate_model(onnx, [hf_metrics], data_configs=data_configs, base_dir=tmp_path)
    assert {v.sub_type: v.value for v in result.values} == pytest.approx(
        {"accuracy": expected["accuracy_score"], "f1": expected["f1_score"]})
    with pytest.raises(EvaluationError, match="matthews_correlation is not measured"):
        evaluate_model(onnx, [{**hf_metrics, "sub_types": [{"name": "matthews_correlation"}]}],
                       data_configs=data_configs, base_dir=tmp_path)
    # a fixed-shape model (Olive's bert_ptq_qdq.json: DynamicToFixedShape 1x128) gets batches of its shape
    from helpers import make_context

    from modelmill.passes.dynamic_to_fixed_shape import DynamicToFixedShape, DynamicToFixedShapeParams

    fixed = DynamicToFixedShape().run(onnx, DynamicToFixedShapeParams(input_name=["input_ids", "attention_mask",
                                                                                  "token_type_ids"],
                                                                      input_shape=[[1, 64]] * 3),
                                      make_context(tmp_path / "fixed", "fixed"))
    result = evaluate_model(fixed, [ACCURACY], data_configs=data_configs, base_dir=tmp_path)
    assert {v.sub_type: v.value for v in result.values} == pytest.approx(expected)
    padded = {"local_dev": {**data_configs["local_dev"], "pre_process_data_config": {"params": {
        "input_cols": ["sentence"], "label_col": "label", "max_length": 64, "padding": "max_length"}}}}
    result = evaluate_model(onnx, [ACCURACY], data_configs=padded, base_dir=tmp_path)
    assert {v.sub_type: v.value for v in result.values} == pytest.approx(expected)
    with pytest.raises(EvaluationError, match="needs a data_config"):
        evaluate_model(hf, [{**ACCURACY, "data_config": None}])
    hub = {"local_dev": {"name": "local_dev", "load_dataset_config": {"params": {"data_name": "glue"}}}}
    with pytest.raises(EvaluationError, match="does not download"):
        evaluate_model(hf, [ACCURACY], data_configs=hub)


SCRIPT = '''
import json
from pathlib import Path

from helper_mod import SCALE  # script_dir is on sys.path


def count_files(model_path, pattern="*.onnx"):
    return float(len(list(Path(model_path).glob(pattern)))) * SCALE


def several(model_path, offset=0.0):
    return {"files": len(list(Path(model_path).iterdir())) + offset, "name_length": len(Path(model_path).name)}
'''


def test_custom_metric_from_user_script(tiny_bert_onnx: ModelRef, tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "my_metrics.py").write_text(SCRIPT)
    (scripts / "helper_mod.py").write_text("SCALE = 2.0\n")
    metrics = [
        {"name": "onnx_files", "type": "custom", "sub_types": [{"name": "count", "priority": 1,
                                                                "higher_is_better": False}],
         "user_config": {"user_script": "my_metrics.py", "script_dir": "scripts", "evaluate_func": "count_files",
                         "evaluate_func_kwargs": {"pattern": "*.onnx"}}},
        {"name": "multi", "type": "custom", "sub_types": [{"name": "files"}, {"name": "name_length"}],
         "user_config": {"user_script": "scripts/my_metrics.py", "script_dir": "scripts", "evaluate_func": "several",
                         "evaluate_func_kwargs": {"offset": 0.5}}},
    ]
    result = evaluate_model(tiny_bert_onnx, metrics, base_dir=tmp_path).by_key()
    assert result["onnx_files-count"].value == 2.0 and not result["onnx_files-count"].higher_is_better
    assert result["multi-files"].value == len(list(tiny_bert_onnx.path.iterdir())) + 0.5
    assert result["multi-name_length"].value == len(tiny_bert_onnx.path.name)
    bad = [{**metrics[1], "sub_types": [{"name": "missing"}]}]
    with pytest.raises(EvaluationError, match="returned no value"):
        evaluate_model(tiny_bert_onnx, bad, base_dir=tmp_path)
    with pytest.raises(EvaluationError, match="not found"):
        evaluate_model(tiny_bert_onnx, [{**metrics[0], "user_config": {"user_script": "nope.py",
                                                                       "evaluate_func": "f"}}], base_dir=tmp_path)


def test_config_never_imports_custom() -> None:
    """Validating a config must not run user code: importing modelmill.config (and the catalog it may use)
    leaves the custom-metric module and the heavy runtimes unimported."""
    import subprocess
    import sys

    code = ("import sys, pkgutil, importlib, modelmill.config as c\n"
            "for m in pkgutil.iter_modules(c.__path__):\n"
            "    try:\n"
            "        importlib.import_module('modelmill.config.' + m.name)\n"
            "    except Exception:\n"
            "        pass\n"
            "bad = [m for m in sys.modules if m in ('modelmill.evaluate.custom', 'modelmill.evaluate.evaluator')]\n"
            "before = set(sys.modules)\n"
            "import modelmill.evaluate.catalog\n"
            "bad += [m for m in set(sys.modules) - before if m.split('.')[0] in ('numpy', 'torch', 'onnx', "
            "'onnxruntime', 'matplotlib', 'transformers') or m.startswith('modelmill.config')]\n"
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
