"""Model code shipped inside a model folder, and the one switch that lets it run.

A Hugging Face folder whose config.json (or tokenizer_config.json) has an ``auto_map`` makes
transformers import Python files from that folder; a ``torch.save``d module is a pickle, which
runs code on load. Neither happens unless the user said so: ``--trust_remote_code`` on the
command line, or the config keys in ``CONFIG_KEYS``. Passes call ``require_trust`` before
loading, and hand ``is_trusted`` to every loader that takes a ``trust_remote_code`` argument.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelmill.errors import PassError

if TYPE_CHECKING:
    from modelmill.engine.model import ModelRef

ATTRIBUTE = "trust_remote_code"
"""The ModelRef attribute that carries the user's consent from the input model to every pass."""
FLAG = "--trust_remote_code"
HF_KEY = "input_model.load_kwargs.trust_remote_code"
PYTORCH_KEY = "input_model.model_attributes.trust_remote_code"
BUILDER_KEY = "extra_options.hf_remote"
HOW_TO_TRUST = (f"only if you have read that code and trust it: pass {FLAG} on the command line, or set "
                f"{HF_KEY}: true in the config (PyTorchModel: {PYTORCH_KEY}: true)")


def is_trusted(model: "ModelRef") -> bool:
    return model.attributes.get(ATTRIBUTE) is True


def remote_code_modules(folder: Path) -> list[str]:
    """Python files (relative names) that transformers would import from ``folder``, sorted; [] if none."""
    modules: set[str] = set()
    for name in ("config.json", "tokenizer_config.json"):
        auto_map = _read_json(folder / name).get("auto_map")
        if isinstance(auto_map, dict):
            for value in auto_map.values():
                for reference in value if isinstance(value, list) else [value]:
                    module = _module_file(reference)
                    if module:
                        modules.add(module)
    return sorted(modules)


def _module_file(reference: Any) -> str | None:
    """``"modeling_x.XModel"`` → ``modeling_x.py``; ``"org/repo--modeling_x.XModel"`` names another repo's file."""
    if not isinstance(reference, str) or "." not in reference:
        return None
    repo, _, local = reference.rpartition("--")
    module = local.rsplit(".", 1)[0]
    return f"{repo}: {module}.py" if repo else f"{module}.py"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        if path.is_file() and path.stat().st_size <= 16 << 20:
            data = json.loads(path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        pass
    return {}


def require_trust(model: "ModelRef", who: str, folder: Path | None = None) -> None:
    """Refuse, before anything is imported, a folder with its own model code that the user did not trust."""
    folder = folder or model.base_model_path
    modules = remote_code_modules(folder)
    if modules and not is_trusted(model):
        raise PassError(f"{who}: {folder / 'config.json'} asks to run the model folder's own Python code "
                        f"(auto_map: {', '.join(modules)}), and remote code is not allowed for this run",
                        fix=f"run it {HOW_TO_TRUST}; otherwise use a model whose architecture transformers "
                            "supports without custom code")


def refuse_untrusted_option(model: "ModelRef", who: str, key: str, value: Any) -> None:
    """A pass option that turns remote code on (``extra_options.hf_remote``) needs the same consent."""
    if _truthy(value) and not is_trusted(model):
        modules = remote_code_modules(model.base_model_path)
        named = f" ({', '.join(modules)})" if modules else ""
        raise PassError(f"{who}: {key} = {value!r} would run Python code from {model.base_model_path}{named}, and "
                        "remote code is not allowed for this run",
                        fix=f"remove {key}, or allow remote code {HOW_TO_TRUST}")


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, (str, int)) and str(value).strip().lower() in ("true", "1", "yes"))
