"""lm-eval ``LM`` adapters for ModelMill's models: ORT GenAI folders, plain ONNX models and Hugging Face folders.

One scoring path serves all three (``ModelMillLM``, an lm-eval ``TemplateLM``); an engine only turns token ids
into logits (and generates greedily for generative tasks):

- ``ortgenai``: an ORT GenAI folder (genai_config.json) through onnxruntime-genai 0.18: the sequence is appended to
  an ``og.Generator`` and ``get_output("logits")`` read ([1, T, vocab]); a model that returns only the last position,
  or a sequence whose full logits would be large, is fed token by token for the positions that are scored.
  An ``.onnx_adapter`` file in the folder is activated, as ``modelmill chat`` does.
- ``ort``: any ONNX causal LM with a ``logits`` output, through an onnxruntime session (past key/values empty, so one
  pass scores every position); generation re-runs the whole sequence per token (no KV cache).
- ``hf``: a Hugging Face folder through transformers (local files only), batched with right padding.

Scoring follows lm-eval's own ``hf`` model: context + continuation truncated from the left to ``max_length`` + 1
tokens, the last token dropped, the continuation's log-probabilities summed from a log-softmax over the logits;
``is_greedy`` when every continuation token is the argmax. Requests sharing a context + continuation[:-1] are run
once (lm-eval's ``Collator`` grouping), which makes single-token multiple-choice tasks one forward pass per question.
Every backend tokenizes with the folder's Hugging Face tokenizer without special tokens (lm-eval's default for causal
LMs), so the backends see the same ids and can be compared number for number.

Imports lm_eval, torch and numpy at module level: import this module only to evaluate.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from lm_eval import utils as lm_utils
from lm_eval.api.model import TemplateLM
from lm_eval.models.utils import Collator

from modelmill.engine.model import ModelRef
from modelmill.evaluate.runtime import EvaluationError

log = logging.getLogger("modelmill.lm_eval")

DEFAULT_MAX_LENGTH = 2048
DEFAULT_MAX_GEN_TOKS = 256
# Above this many logits (sequence length x vocabulary) a genai model is fed token by token for the scored positions
# instead of copying the whole [T, vocab] output (256 MB of float32).
FULL_LOGITS_LIMIT = 1 << 26

Progress = Callable[[int, int, str], None]


# ---------------------------------------------------------------------------------------------- engines

class Engine:
    """Token ids in, logits out. ``logits(tokens, last)`` is [last, vocab]: row i predicts the token after
    ``tokens[len(tokens) - last + i]``."""

    name = "?"
    context_length: int | None = None

    def logits(self, tokens: list[int], last: int) -> np.ndarray:
        raise NotImplementedError

    def batch_logits(self, sequences: list[list[int]], lasts: list[int]) -> list[np.ndarray]:
        return [self.logits(tokens, last) for tokens, last in zip(sequences, lasts)]

    def generate(self, tokens: list[int], max_new_tokens: int, stop_ids: set[int]) -> list[int]:
        raise NotImplementedError


class GenaiEngine(Engine):
    name = "ortgenai"

    def __init__(self, model: ModelRef, execution_provider: str) -> None:
        import onnxruntime_genai as og

        from modelmill.evaluate.llm import genai_model

        self.og = og
        try:
            self.model = genai_model(model.path, execution_provider)
        except EvaluationError:
            raise
        except Exception as exc:  # noqa: BLE001 - onnxruntime-genai raises RuntimeError for most things
            hint = ("install onnxruntime-genai-cuda (in place of onnxruntime-genai) for --device gpu, or use "
                    "--device cpu") if execution_provider != "CPUExecutionProvider" else \
                "check that the folder is a complete ORT GenAI model (genai_config.json, the ONNX files)"
            raise EvaluationError(f"onnxruntime-genai could not load {model.path} on {execution_provider}: {exc}",
                                  fix=hint) from exc
        config = json.loads((model.path / "genai_config.json").read_text())
        self.context_length = config.get("model", {}).get("context_length") or \
            config.get("search", {}).get("max_length")
        self.vocab_size = int(config.get("model", {}).get("vocab_size") or 0)
        self.full_logits = True  # until the model shows it returns only the last position
        self.adapters = None
        self.adapter_file = next(iter(sorted(model.path.glob("*.onnx_adapter"))), None)
        if self.adapter_file is not None:
            from modelmill.genai import ADAPTER_NAME

            self.adapters = og.Adapters(self.model)
            self.adapters.load(str(self.adapter_file), ADAPTER_NAME)

    def _generator(self, max_length: int) -> Any:
        params = self.og.GeneratorParams(self.model)
        # max_length = this sequence: the KV cache is sized for it, not for the model's whole context.
        params.set_search_options(max_length=max_length, do_sample=False)
        generator = self.og.Generator(self.model, params)
        if self.adapters is not None:
            from modelmill.genai import ADAPTER_NAME

            generator.set_active_adapter(self.adapters, ADAPTER_NAME)
        return generator

    def logits(self, tokens: list[int], last: int) -> np.ndarray:
        if self.full_logits and (last > 1 and len(tokens) * max(self.vocab_size, 1) <= FULL_LOGITS_LIMIT):
            generator = self._generator(len(tokens))
            generator.append_tokens(np.asarray(tokens, dtype=np.int32))
            out = np.asarray(generator.get_output("logits"), dtype=np.float32)
            if out.ndim == 3 and out.shape[1] == len(tokens):
                return out[0, len(tokens) - last:]
            self.full_logits = False  # e.g. a model built to return the last position only
        generator = self._generator(len(tokens))
        start = len(tokens) - last
        generator.append_tokens(np.asarray(tokens[:start + 1], dtype=np.int32))
        rows = [np.asarray(generator.get_logits(), dtype=np.float32).reshape(-1)[-self._vocab(generator):]]
        for token in tokens[start + 1:]:
            generator.append_tokens(np.asarray([token], dtype=np.int32))
            rows.append(np.asarray(generator.get_logits(), dtype=np.float32).reshape(-1)[-self._vocab(generator):])
        return np.stack(rows)

    def _vocab(self, generator: Any) -> int:
        if not self.vocab_size:
            self.vocab_size = int(np.asarray(generator.get_logits()).shape[-1])
        return self.vocab_size

    def generate(self, tokens: list[int], max_new_tokens: int, stop_ids: set[int]) -> list[int]:
        generator = self._generator(len(tokens) + max_new_tokens)
        generator.append_tokens(np.asarray(tokens, dtype=np.int32))
        new: list[int] = []
        while not generator.is_done() and len(new) < max_new_tokens:
            generator.generate_next_token()
            token = int(generator.get_next_tokens()[0])
            new.append(token)
            if token in stop_ids:
                break
        return new


class OrtEngine(Engine):
    name = "ort"

    def __init__(self, model: ModelRef, execution_provider: str) -> None:
        from modelmill.evaluate.runtime import ort_session

        self.model = model
        self.session = ort_session(model.model_file, execution_provider)
        outputs = [meta.name for meta in self.session.get_outputs()]
        if "logits" not in outputs:
            raise EvaluationError(f"{model.model_file} has no logits output (outputs: {', '.join(outputs)})",
                                  fix="lm-eval tasks need a causal LM that returns logits")
        genai = model.path / "genai_config.json"
        if genai.exists():
            self.context_length = json.loads(genai.read_text()).get("model", {}).get("context_length")
        else:
            self.context_length = model.hf_config().get("max_position_embeddings")

    def logits(self, tokens: list[int], last: int) -> np.ndarray:
        from modelmill.evaluate.runtime import token_feeds

        out = self.session.run(["logits"], token_feeds(self.session, self.model, tokens))[0][0]
        if out.shape[0] != len(tokens):
            raise EvaluationError(f"{self.model.model_file} returns logits for {out.shape[0]} of {len(tokens)} "
                                  "positions", fix="rebuild the model with logits for every position (no "
                                                   "prune_lm_head), or evaluate it with the ortgenai backend")
        return np.asarray(out[len(tokens) - last:], dtype=np.float32)

    def generate(self, tokens: list[int], max_new_tokens: int, stop_ids: set[int]) -> list[int]:
        ids, new = list(tokens), []
        for _ in range(max_new_tokens):
            token = int(np.argmax(self.logits(ids, 1)[-1]))
            new.append(token)
            ids.append(token)
            if token in stop_ids:
                break
        return new


class HfEngine(Engine):
    name = "hf"

    def __init__(self, model: ModelRef, device: str, trust_remote_code: bool = False) -> None:
        from modelmill.evaluate.runtime import load_hf

        if device == "cuda" and not torch.cuda.is_available():
            raise EvaluationError("--device gpu: torch here has no CUDA device for the Hugging Face model",
                                  fix="use --device cpu, or a machine with a CUDA build of torch and a GPU")
        self.device = torch.device(device)
        base = model.base_model_path
        hf_model = load_hf(base, class_name="AutoModelForCausalLM", trust_remote_code=trust_remote_code)
        if model.adapter_dir is not None:
            from peft import PeftModel

            hf_model = PeftModel.from_pretrained(hf_model, str(model.adapter_dir)).eval()
        self.model = hf_model.to(self.device)
        config = getattr(hf_model, "config", None)
        self.context_length = getattr(config, "max_position_embeddings", None)
        self.pad_id = getattr(config, "pad_token_id", None)
        if not isinstance(self.pad_id, int):
            self.pad_id = 0

    def batch_logits(self, sequences: list[list[int]], lasts: list[int]) -> list[np.ndarray]:
        width = max(len(seq) for seq in sequences)
        ids = torch.full((len(sequences), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, seq in enumerate(sequences):  # right padding: a causal model's real positions never see the pads
            ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, :len(seq)] = 1
        with torch.inference_mode():
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
        logits = logits.float().cpu().numpy()
        return [logits[row, len(seq) - last:len(seq)] for row, (seq, last) in enumerate(zip(sequences, lasts))]

    def logits(self, tokens: list[int], last: int) -> np.ndarray:
        return self.batch_logits([tokens], [last])[0]

    def generate(self, tokens: list[int], max_new_tokens: int, stop_ids: set[int]) -> list[int]:
        ids = torch.tensor([tokens], dtype=torch.long, device=self.device)
        with torch.inference_mode():
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                      max_new_tokens=max_new_tokens, pad_token_id=self.pad_id,
                                      eos_token_id=sorted(stop_ids) or None)
        new = [int(t) for t in out[0, len(tokens):]]
        for index, token in enumerate(new):
            if token in stop_ids:
                return new[:index + 1]
        return new


# ---------------------------------------------------------------------------------------------- tokenizer

def load_tokenizer(folders: list[Path], trust_remote_code: bool = False) -> Any:
    """The first folder's Hugging Face tokenizer (local files only)."""
    from transformers import AutoTokenizer

    for folder in folders:
        if (folder / "tokenizer.json").exists() or (folder / "tokenizer_config.json").exists():
            try:
                return AutoTokenizer.from_pretrained(str(folder), local_files_only=True,
                                                     trust_remote_code=trust_remote_code)
            except Exception as exc:  # noqa: BLE001 - transformers raises many kinds
                raise EvaluationError(f"transformers could not load the tokenizer in {folder}: {exc}",
                                      fix="keep the Hugging Face tokenizer files (tokenizer.json, "
                                          "tokenizer_config.json) in the model folder") from exc
    raise EvaluationError(f"no Hugging Face tokenizer in {', '.join(str(f) for f in folders)}",
                          fix="lm-eval tasks need the model's tokenizer files (tokenizer.json, tokenizer_config.json) "
                              "beside the model; ModelMill's outputs keep them")


# ---------------------------------------------------------------------------------------------- the LM

class ModelMillLM(TemplateLM):
    """lm-eval's ``LM`` over an ``Engine``: loglikelihood, loglikelihood_rolling and greedy generate_until."""

    def __init__(self, engine: Engine, tokenizer: Any, *, batch_size: int = 1, max_length: int | None = None,
                 max_gen_toks: int = DEFAULT_MAX_GEN_TOKS, eos_token_id: int | None = None,
                 progress: Progress | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.tokenizer = tokenizer
        self.batch_size = max(1, int(batch_size))
        limits = [value for value in (max_length, engine.context_length) if value]
        self._max_length = int(min(limits)) if limits else DEFAULT_MAX_LENGTH
        self._max_gen_toks = int(max_gen_toks)
        eos = eos_token_id if eos_token_id is not None else tokenizer.eos_token_id
        self._eot = int(eos) if eos is not None else 0
        self.progress = progress

    # --- lm-eval's interface ------------------------------------------------------------------

    @property
    def eot_token_id(self) -> int:
        return self._eot

    @property
    def prefix_token_id(self) -> int:
        bos = self.tokenizer.bos_token_id
        return int(bos) if bos is not None else self._eot

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def max_gen_toks(self) -> int:
        return self._max_gen_toks

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tokenizer, "name_or_path", "tokenizer")).replace("/", "__")

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        return list(self.tokenizer.encode(string, add_special_tokens=bool(add_special_tokens)))

    def tok_decode(self, tokens: list[int], **kwargs: Any) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    def _loglikelihood_tokens(self, requests: list[Any], disable_tqdm: bool = False,
                              **kwargs: Any) -> list[tuple[float, bool]]:
        def sort_key(request: Any) -> tuple[int, tuple[int, ...]]:
            tokens = request[1] + request[2]
            return -len(tokens), tuple(tokens)  # longest first: the first batch is the largest

        collator = Collator(requests, sort_fn=sort_key, group_by="contexts",
                            group_fn=lambda request: request[-2] + request[-1][:-1])
        results: list[tuple[float, bool]] = []
        total, done = len(requests), 0
        for chunk in collator.get_batched(n=self.batch_size):
            inputs, lasts = [], []
            for _, context, continuation in chunk:
                if not continuation:
                    raise EvaluationError("an lm-eval request has an empty continuation", fix="check the task")
                # context + continuation, truncated from the left; the last token is only predicted, never fed
                window = (context + continuation)[-(self.max_length + 1):][:-1]
                inputs.append(window)
                lasts.append(min(len(continuation), len(window)))
            for (request, context, continuation), logits in zip(chunk, self.engine.batch_logits(inputs, lasts)):
                scores = F.log_softmax(torch.from_numpy(np.ascontiguousarray(logits)).float(), dim=-1).unsqueeze(0)
                for request_str, cont_tokens, cont_scores in collator.get_cache(
                        req_str=request, cxt_toks=context, cont_toks=continuation, logits=scores):
                    # a request grouped with this one shares the sequence but the last token: its continuation is
                    # predicted by the last rows
                    count = min(len(cont_tokens), cont_scores.shape[1])
                    target = torch.tensor(cont_tokens[-count:], dtype=torch.long).unsqueeze(0)
                    picked = cont_scores[:, -count:]
                    greedy = bool((picked.argmax(dim=-1) == target).all())
                    answer = (float(torch.gather(picked, 2, target.unsqueeze(-1)).sum()), greedy)
                    results.append(answer)
                    if request_str is not None:
                        self.cache_hook.add_partial("loglikelihood", request_str, answer)
                    done += 1
            self._report(done, total, "loglikelihood")
        return collator.get_original(results)

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        scores = []
        for index, (text,) in enumerate(request.args for request in requests):
            rolling = lm_utils.get_rolling_token_windows(token_list=self.tok_encode(text),
                                                         prefix_token=self.prefix_token_id,
                                                         max_seq_len=self.max_length, context_len=1)
            windows = [(None,) + window for window in map(lm_utils.make_disjoint_window, rolling)]
            progress, self.progress = self.progress, None  # one report per document, not per window
            try:
                total = sum(score for score, _ in self._loglikelihood_tokens(windows))
            finally:
                self.progress = progress
            scores.append(total)
            self.cache_hook.add_partial("loglikelihood_rolling", (text,), total)
            self._report(index + 1, len(requests), "loglikelihood_rolling")
        return scores

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        outputs = []
        for index, (context, gen_kwargs) in enumerate(request.args for request in requests):
            kwargs = dict(gen_kwargs or {})
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            max_new = int(kwargs.get("max_gen_toks", self.max_gen_toks))
            tokens = self.tok_encode(context)[-max(1, self.max_length - max_new):]
            max_new = max(1, min(max_new, self.max_length - len(tokens)))
            text = self.tok_decode(self.engine.generate(tokens, max_new, {self.eot_token_id}))
            for stop in until:
                if stop and stop in text:
                    text = text[:text.index(stop)]
            outputs.append(text)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
            self._report(index + 1, len(requests), "generate_until")
        return outputs

    def _report(self, done: int, total: int, kind: str) -> None:
        if self.progress is not None:
            self.progress(done, total, kind)


def make_lm(model: ModelRef, model_class: str, *, execution_provider: str = "CPUExecutionProvider",
            batch_size: int = 1, max_length: int | None = None, max_gen_toks: int = DEFAULT_MAX_GEN_TOKS,
            trust_remote_code: bool = False, progress: Progress | None = None) -> ModelMillLM:
    """The lm-eval model for ``model`` run by ``model_class`` (hf, ort or ortgenai)."""
    folders = [model.path]
    eos = None
    if model_class == "ortgenai":
        if not model.is_genai:
            raise EvaluationError(f"{model.path} is not an ORT GenAI folder (no genai_config.json)",
                                  fix="use the ort backend for a plain ONNX model (--backend ort)")
        engine: Engine = GenaiEngine(model, execution_provider)
        eos = json.loads((model.path / "genai_config.json").read_text()).get("model", {}).get("eos_token_id")
        eos = eos[0] if isinstance(eos, list) and eos else eos
    elif model_class == "ort":
        if model.kind != "onnx":
            raise EvaluationError(f"the ort backend runs ONNX models, and {model.path} is a {model.kind} model",
                                  fix="drop --backend for a Hugging Face folder")
        engine = OrtEngine(model, execution_provider)
    elif model_class == "hf":
        if model.kind != "hf":
            raise EvaluationError(f"the hf backend runs Hugging Face folders, and {model.path} is a {model.kind} "
                                  "model", fix="use the ort or ortgenai backend for ONNX models")
        engine = HfEngine(model, "cuda" if execution_provider == "CUDAExecutionProvider" else "cpu",
                          trust_remote_code)
        folders = [model.path, model.base_model_path]
    else:
        raise EvaluationError(f"unknown lm-eval model class {model_class!r}", fix="use hf, ort or ortgenai")
    tokenizer = load_tokenizer(folders, trust_remote_code)
    return ModelMillLM(engine, tokenizer, batch_size=batch_size, max_length=max_length, max_gen_toks=max_gen_toks,
                       eos_token_id=eos if isinstance(eos, int) else None, progress=progress)
