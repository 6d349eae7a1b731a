"""`modelmill diffusion-lora` and the SDLoRA pass: Olive's flags, the generated config, refusals, and training on
tiny random SD / SDXL / Flux pipelines (the adapter loads back into the pipeline and changes its denoiser).

The training tests are marked slow: each imports torch and diffusers twice (the test and the run's worker) and
builds a pipeline, some 20 s of CPU even for a few steps of a 50k-parameter UNet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from diffusion_helpers import save_flux_pipeline, save_sdxl_pipeline, write_images
from helpers import events, make_context, run_pass
from modelmill.cli import build_parser, main
from modelmill.commands.diffusion_lora import build_config
from modelmill.engine.model import ModelRef
from modelmill.passes.sd_lora import SDLoRA

SMALL = ["--base_resolution", "16", "--lora_r", "4", "--gradient_accumulation_steps", "1", "--seed", "0"]


def _config(*flags: str, device: str = "cpu") -> dict:
    return build_config(build_parser().parse_args(["diffusion-lora", *flags]), device)


def _data(images: Path) -> dict:
    return {"load_dataset_config": {"type": "image_folder_dataset", "params": {"data_dir": str(images)}},
            "pre_process_data_config": {"type": "image_lora_preprocess", "params": {"base_resolution": 16}}}


def test_olive_flags_become_an_sdlora_config(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    config = _config("-m", "pipe", "-d", "imgs", "-r", "8", "--alpha", "4", "--target_modules", "to_q, to_v",
                     "--dreambooth", "--instance_prompt", "a sks dog", "--with_prior_preservation", "--class_prompt",
                     "a dog", "--num_class_images", "10", "--max_train_steps", "50", "--mixed_precision", "fp16",
                     "--model_variant", "sdxl", "--merge_lora", "-o", "out")
    assert config["input_model"] == {"type": "DiffusersModel", "model_path": "pipe"}
    sd_lora = config["passes"]["sd_lora"]
    assert sd_lora["type"] == "SDLoRA" and sd_lora["r"] == 8 and sd_lora["alpha"] == 4.0
    assert sd_lora["target_modules"] == ["to_q", "to_v"] and sd_lora["model_variant"] == "sdxl"
    assert sd_lora["dreambooth"] and sd_lora["instance_prompt"] == "a sks dog" and sd_lora["num_class_images"] == 10
    assert sd_lora["merge_lora"] and "class_data_dir" not in sd_lora
    assert sd_lora["training_args"]["max_train_steps"] == 50 and sd_lora["training_args"]["mixed_precision"] == "fp16"
    assert "seed" not in sd_lora["training_args"]  # unset flags stay unset, as in Olive
    data = sd_lora["train_data_config"]  # inline: the images are part of the pass's cache key
    assert data["type"] == "ImageDataContainer"
    assert data["load_dataset_config"] == {"type": "image_folder_dataset",
                                           "params": {"data_dir": str((tmp_path / "imgs").resolve())}}
    assert data["pre_process_data_config"]["params"] == {"base_resolution": 1024}  # SDXL's, as Olive picks it
    assert config["output_dir"] == "out" and config["systems"]["local_system"]["accelerators"][0]["device"] == "cpu"
    auto = _config("-m", "pipe", "--data_name", "ds", "--caption_column", "text")["passes"]["sd_lora"]
    assert auto["train_data_config"]["load_dataset_config"]["params"] == {
        "data_name": "ds", "split": "train", "image_column": "image", "caption_column": "text"}
    assert "pre_process_data_config" not in auto["train_data_config"]  # auto: the pass reads the pipeline's


def test_generated_config_validates_and_plans(pipeline_folder: Path, images: Path) -> None:
    from modelmill.config import load_workflow, parse_document
    from modelmill.engine.plan import plan_from_config

    config = _config("-m", str(pipeline_folder), "-d", str(images))
    workflow = load_workflow(parse_document(json.dumps(config), "<diffusion-lora>.json"))
    assert [(name, cls.name) for name, cls, _ in workflow.pass_chain()] == [("sd_lora", "SDLoRA")]
    plan = plan_from_config(workflow)
    assert plan.input_model.kind == "diffusers" and plan.input_model.attributes["model_variant"] == "auto"


@pytest.mark.parametrize("extra, message", [
    ({"dreambooth": True}, "dreambooth needs instance_prompt"),
    ({"with_prior_preservation": True, "class_prompt": "a dog"}, "with_prior_preservation needs dreambooth"),
    ({"dreambooth": True, "instance_prompt": "x", "with_prior_preservation": True}, "needs class_prompt"),
])
def test_dreambooth_settings_are_checked_with_the_config(extra: dict, message: str) -> None:
    from modelmill.config import load_workflow, parse_document
    from modelmill.errors import ConfigError

    config = {"input_model": {"type": "DiffusersModel", "model_path": "pipe"},
              "passes": {"sd_lora": {"type": "SDLoRA", "train_data_config": "d", **extra}}}
    with pytest.raises(ConfigError, match=message):
        load_workflow(parse_document(json.dumps(config), "c.json"))


@pytest.mark.parametrize("flags, message, flag", [
    ([], "needs training images", "--data_dir"),
    (["-d", "imgs", "--model_variant", "sd3"], "sd3 is not supported", "--model_variant"),
    (["-d", "imgs", "--account_name", "a"], "Azure", "--account_name"),
])
def test_refusals_name_the_flag(flags: list[str], message: str, flag: str, pipeline_folder: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    Path("imgs").mkdir(exist_ok=True)
    assert main(["diffusion-lora", "-m", str(pipeline_folder), *flags, "-o", "out"]) != 0
    err = capsys.readouterr().err
    assert message in err and flag in err and "fix:" in err
    assert not Path("out").exists()


def test_folder_that_is_not_a_pipeline_is_refused(tmp_path: Path, images: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notpipe").mkdir()
    assert main(["diffusion-lora", "-m", str(tmp_path / "notpipe"), "-d", str(images), "-o", "out"]) != 0
    assert "no model_index.json" in capsys.readouterr().err


def test_dry_run_prints_the_plan_and_writes_nothing(pipeline_folder: Path, images: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diffusion-lora", "-m", str(pipeline_folder), "-d", str(images), "-o", "out", "--dry_run",
                 "--save_config_file"]) == 0
    captured = capsys.readouterr()
    assert "SDLoRA" in captured.err and json.loads(captured.out)["passes"]["sd_lora"]["type"] == "SDLoRA"
    assert not Path("out").exists()
    saved = json.loads(Path("diffusion-lora-config.json").read_text())
    assert saved["input_model"]["type"] == "DiffusersModel"


def _unet_output(pipe: object) -> object:
    import torch

    torch.manual_seed(0)
    sample, hidden = torch.randn(1, 4, 8, 8), torch.randn(1, 16, 16)
    with torch.no_grad():
        return pipe.unet(sample, torch.tensor([10]), hidden).sample  # type: ignore[attr-defined]


@pytest.mark.slow
def test_train_sd_lora_end_to_end(sd_pipeline: Path, images: Path, tmp_path: Path) -> None:
    """The command through the run engine: progress events with the loss, the adapter in diffusers' format,
    which loads into the pipeline (rank and alpha as trained) and changes the UNet's output."""
    import torch
    from diffusers import StableDiffusionPipeline

    events_file = tmp_path / "events.jsonl"
    assert main(["diffusion-lora", "-m", str(sd_pipeline), "-d", str(images), "-o", "lora", *SMALL,
                 "--alpha", "8", "--max_train_steps", "3", "--train_batch_size", "2", "--learning_rate", "1e-2",
                 "--events", str(events_file)]) == 0
    out = Path("lora")
    adapter = out / "adapter" / "pytorch_lora_weights.safetensors"
    assert adapter.is_file() and not list(Path(".").glob(".lora.*"))  # renamed into place whole
    manifest = json.loads((out / "modelmill_run.json").read_text())
    assert set(manifest["files"]) == {"adapter/pytorch_lora_weights.safetensors", "training_log.json"}
    assert manifest["input_model"]["kind"] == "diffusers"
    steps = [json.loads(line) for line in events_file.read_text().splitlines() if '"train.step"' in line]
    assert [e["step"] for e in steps] == [1, 3] and all(e["loss"] > 0 for e in steps)  # first and last step
    assert steps[-1]["max_steps"] == 3 and steps[-1]["learning_rate"] == pytest.approx(1e-2)
    log = json.loads((out / "training_log.json").read_text())
    assert log["model_variant"] == "sd" and log["steps"] == 3 and len(log["log_history"]) == 3
    assert log["lora"] == {"r": 4, "alpha": 8.0, "dropout": 0.0, "target_modules": ["to_k", "to_out.0", "to_q",
                                                                                    "to_v"]}

    pipe = StableDiffusionPipeline.from_pretrained(str(sd_pipeline), safety_checker=None,
                                                   requires_safety_checker=False)
    base = _unet_output(pipe)
    pipe.load_lora_weights(str(out / "adapter"))
    [config] = pipe.unet.peft_config.values()
    assert config.r == 4 and config.lora_alpha == 8.0  # the metadata: alpha/r applied as trained
    assert not torch.allclose(base, _unet_output(pipe), atol=1e-5)


@pytest.mark.slow
def test_dreambooth_prior_preservation_and_merge(sd_pipeline: Path, images: Path, tmp_path: Path) -> None:
    """Class images are generated with the base pipeline into the cache (the class folder is only read); the merged
    pipeline's UNet equals the base with the adapter fused."""
    import torch
    from diffusers import StableDiffusionPipeline

    class_dir = write_images(tmp_path / "class", count=1, captions=False)
    model = ModelRef(kind="diffusers", path=sd_pipeline)
    result, ctx = run_pass(SDLoRA, model, tmp_path, r=4, train_data_config=_data(images), dreambooth=True,
                           instance_prompt="a sks toy", with_prior_preservation=True, class_prompt="a toy",
                           class_data_dir=str(class_dir), num_class_images=3, merge_lora=True,
                           training_args={"max_train_steps": 2, "gradient_accumulation_steps": 1,
                                          "learning_rate": 1e-2, "seed": 0})
    assert sorted(p.name for p in class_dir.iterdir()) == ["image0.png"]  # nothing written into the user's folder
    generated = list((ctx.cache_dir / "sd-lora-class-images").rglob("class_*.png"))
    assert len(generated) == 2
    log = json.loads((ctx.output_dir / "training_log.json").read_text())
    assert log["prior_preservation"] == {"class_prompt": "a toy", "class_images": 3, "weight": 1.0}
    assert result.kind == "diffusers" and result.path == ctx.output_dir and not result.attributes["adapter_path"]

    merged = StableDiffusionPipeline.from_pretrained(str(ctx.output_dir), safety_checker=None,
                                                     requires_safety_checker=False)
    fused = StableDiffusionPipeline.from_pretrained(str(sd_pipeline), safety_checker=None,
                                                    requires_safety_checker=False)
    base = _unet_output(fused)
    fused.load_lora_weights(str(ctx.output_dir / "adapter"))
    fused.fuse_lora()
    assert torch.allclose(_unet_output(merged), _unet_output(fused), atol=1e-5)
    assert not torch.allclose(_unet_output(merged), base, atol=1e-5)


@pytest.mark.slow
def test_cancel_keeps_a_checkpoint_and_the_next_run_resumes(sd_pipeline: Path, images: Path, tmp_path: Path) -> None:
    from modelmill.errors import RunCancelled

    model = ModelRef(kind="diffusers", path=sd_pipeline)
    params = SDLoRA.Params(r=4, train_data_config=_data(images),
                           training_args={"max_train_steps": 3, "gradient_accumulation_steps": 1, "seed": 0})
    ctx = make_context(tmp_path, "first")
    ctx.bus.listeners.append(lambda e: ctx.cancel.set() if e["type"] == "train.step" else None)
    with pytest.raises(RunCancelled):
        SDLoRA().run(model, params, ctx)
    assert "run the same command again to resume" in events(ctx, "warning")[0]["message"]
    assert list((ctx.cache_dir / "sd-lora-checkpoints").rglob("checkpoint-1.pt"))
    again = make_context(tmp_path, "second")
    again.cache_dir = ctx.cache_dir  # the same cache: the checkpoint is found
    SDLoRA().run(model, params, again)
    log = json.loads((again.output_dir / "training_log.json").read_text())
    assert log["resumed_from_step"] == 1 and [e["step"] for e in log["log_history"]] == [1, 2, 3]
    assert not list((ctx.cache_dir / "sd-lora-checkpoints").rglob("*.pt"))  # finished: dropped


@pytest.mark.slow
@pytest.mark.parametrize("family", ["sdxl", "flux"])
def test_sdxl_and_flux_adapters_load_into_their_pipelines(family: str, images: Path, tmp_path: Path) -> None:
    import torch
    from diffusers import DiffusionPipeline

    pipeline = (save_sdxl_pipeline if family == "sdxl" else save_flux_pipeline)(tmp_path / family)
    result, ctx = run_pass(SDLoRA, ModelRef(kind="diffusers", path=pipeline), tmp_path, r=4,
                           train_data_config=_data(images), training_args={
                               "max_train_steps": 2, "gradient_accumulation_steps": 1, "learning_rate": 1e-2,
                               "seed": 0, "logging_steps": 1})
    assert result.attributes["model_variant"] == family
    assert [e["step"] for e in events(ctx, "train.step")] == [1, 2]
    pipe = DiffusionPipeline.from_pretrained(str(pipeline))
    denoiser = pipe.unet if family == "sdxl" else pipe.transformer
    before = {name: p.clone() for name, p in denoiser.named_parameters()}
    pipe.load_lora_weights(str(ctx.output_dir / "adapter"))
    pipe.fuse_lora()
    pipe.unload_lora_weights()  # the fused weights stay, under their own names again
    changed = [name for name, p in denoiser.named_parameters() if name in before and
               not torch.equal(p, before[name])]
    assert changed and all(any(t in name for t in ("to_q", "to_k", "to_v", "to_out", "add_", "to_add_out"))
                           for name in changed)


def test_sd3_pipeline_is_refused_by_name(tmp_path: Path, images: Path) -> None:
    from modelmill.errors import PassError

    pipe = tmp_path / "sd3"
    (pipe / "transformer").mkdir(parents=True)
    (pipe / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusion3Pipeline"}))
    (pipe / "transformer" / "config.json").write_text(json.dumps({"_class_name": "SD3Transformer2DModel"}))
    with pytest.raises(PassError, match="sd3 is not supported") as caught:
        run_pass(SDLoRA, ModelRef(kind="diffusers", path=pipe), tmp_path, train_data_config=_data(images))
    assert caught.value.where == "model_variant"


def test_gpu_without_cuda_is_a_clear_error(pipeline_folder: Path, images: Path, tmp_path: Path) -> None:
    import torch
    from modelmill.engine.context import Accelerator
    from modelmill.errors import PassError

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    ctx = make_context(tmp_path, "gpu", Accelerator("gpu", "CUDAExecutionProvider"))
    with pytest.raises(PassError, match="no CUDA device"):
        SDLoRA().run(ModelRef(kind="diffusers", path=pipeline_folder),
                     SDLoRA.Params(train_data_config=_data(images)), ctx)
