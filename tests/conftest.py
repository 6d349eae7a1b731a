"""Shared fixtures: tiny Llama and BERT models built at test time (no downloads; modelmill.testing.tiny_models),
and their ONNX exports."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


def pytest_configure(config: pytest.Config) -> None:
    """Every test runs in an empty working folder of its own session, not in the checkout: checks that look at the
    file system relative to the working folder (an output_dir "out" that exists, a default .olive-cache) must not
    depend on what a developer's checkout holds (TypeScript's out/, earlier runs' models/). Set before collection,
    when test modules build their Environment objects (whose cwd is read then). Under pytest-xdist only the workers
    move: the controller starts them in its own working folder, where they find the checkout's pytest settings."""
    distributing = bool(getattr(config.option, "numprocesses", None)) and "PYTEST_XDIST_WORKER" not in os.environ
    if distributing:
        return
    folder = tempfile.mkdtemp(prefix="modelmill-tests-")
    os.chdir(folder)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    # The suite starts many runs, each in a worker process: fork them from one process that has
    # imported what they need once, not spawn each (3 s of imports apiece).
    from modelmill.engine.runner import use_warm_workers

    use_warm_workers(["modelmill.engine.workflow", "modelmill.evaluate.job", "torch", "transformers", "onnx",
                      "onnxruntime", "onnxruntime_genai"])


# One PyTorch/OpenMP/BLAS thread per process (set before anything imports torch; child processes inherit it):
# the test models are tiny (hidden 64), where a second thread only adds synchronisation, and on a busy machine
# spinning OpenMP threads make each op an order of magnitude slower (GPTQ on the tiny Llama: 27 s → 2 s at a load
# average of 10 on 2 cores). A value the developer set is kept.
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
# rich wraps output at 80 columns when stderr is not a terminal, and the paths in it vary in length (pytest's
# numbered temp folders, xdist's popen-gwN): a wrapped path would break the tests that look for it in the output.
os.environ.setdefault("COLUMNS", "400")

from helpers import built_model_once, built_once, make_context  # noqa: E402
from modelmill.engine.model import ModelRef  # noqa: E402
from modelmill.testing.tiny_models import build_genai, build_tiny_bert, build_tiny_llama  # noqa: E402


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded 2-layer LlamaForCausalLM (hidden 64, 4 heads, 2 KV heads) with a BPE tokenizer, as an HF folder.
    Shared by the session: read it, copy it before writing."""
    return built_once(tmp_path_factory, "tiny_llama", build_tiny_llama)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded 2-layer BertModel (hidden 64, 4 heads) with a WordPiece tokenizer, as an HF folder."""
    return built_once(tmp_path_factory, "tiny_bert", build_tiny_bert)


def _convert(hf_dir: Path, tmp_path_factory: pytest.TempPathFactory, name: str) -> ModelRef:
    from modelmill.passes.onnx_conversion import OnnxConversion

    def convert(folder: Path) -> ModelRef:
        return OnnxConversion().run(ModelRef(kind="hf", path=hf_dir), OnnxConversion.Params(),
                                    make_context(folder, name))

    return built_model_once(tmp_path_factory, name, convert)


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
    out = built_once(tmp_path_factory, "tiny_llama_genai",
                     lambda folder: build_genai(tiny_llama_dir, folder / "model", folder / "builder_cache"))
    return ModelRef(kind="onnx", path=out / "model")
