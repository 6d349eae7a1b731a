"""Tiny random diffusers pipelines built at test time (no downloads): SD 1.5-style, SDXL-style and Flux-style, with a
CLIP tokenizer made from a vocabulary and merges written here, and a few small images with captions."""

from __future__ import annotations

import json
from pathlib import Path

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def clip_tokenizer(folder: Path):
    """A CLIPTokenizer over single letters (no merges): every word is spelled out."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2}
    for index, letter in enumerate(LETTERS):
        vocab[letter] = 3 + index
        vocab[letter + "</w>"] = 3 + len(LETTERS) + index
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16)


def _clip_text(hidden: int, projection: bool = False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(vocab_size=64, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                            num_attention_heads=2, max_position_embeddings=16, projection_dim=hidden,
                            bos_token_id=0, eos_token_id=1, pad_token_id=1)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config).eval()


def _vae(blocks: tuple[int, ...] = (8, 8), latent_channels: int = 4, **extra):
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * len(blocks),
                         up_block_types=("UpDecoderBlock2D",) * len(blocks), block_out_channels=blocks,
                         latent_channels=latent_channels, layers_per_block=1, norm_num_groups=4, sample_size=16,
                         **extra)


def save_sd_pipeline(out: Path) -> Path:
    """SD 1.5-style: a 2-block UNet with cross-attention, a 2-block VAE (16 px images → 8x8 latents), a CLIP
    text encoder, a DDPM scheduler."""
    import torch
    from diffusers import DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(8, 16), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
                                attention_head_dim=2, norm_num_groups=4)
    pipe = StableDiffusionPipeline(unet=unet, vae=_vae(), text_encoder=_clip_text(16),
                                   tokenizer=clip_tokenizer(out / "vocab"),
                                   scheduler=DDPMScheduler(num_train_timesteps=100, clip_sample=False),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(out / "pipeline"))
    return out / "pipeline"


def save_sdxl_pipeline(out: Path) -> Path:
    """SDXL-style: UNet with text_time conditioning over two CLIP encoders (16 + 16 = 32 wide)."""
    import torch
    from diffusers import (
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(8, 16), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=2, norm_num_groups=4, use_linear_projection=True,
                                addition_embed_type="text_time", addition_time_embed_dim=4,
                                projection_class_embeddings_input_dim=6 * 4 + 16)
    tokenizer = clip_tokenizer(out / "vocab")
    pipe = StableDiffusionXLPipeline(unet=unet, vae=_vae(), text_encoder=_clip_text(16),
                                     text_encoder_2=_clip_text(16, projection=True), tokenizer=tokenizer,
                                     tokenizer_2=tokenizer,
                                     scheduler=EulerDiscreteScheduler(num_train_timesteps=100))
    pipe.save_pretrained(str(out / "pipeline"))
    return out / "pipeline"


def save_flux_pipeline(out: Path) -> Path:
    """Flux-style: a 1+1-layer FluxTransformer2DModel with guidance embedding, CLIP + a tiny T5 encoder, a 1-block
    VAE (images at latent size, 1 latent channel packed 2x2)."""
    import torch
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        FluxTransformer2DModel,
    )
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=16, axes_dims_rope=[4, 4, 8], guidance_embeds=True)
    t5 = T5EncoderModel(T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=2,
                                 decoder_start_token_id=0)).eval()
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{letter: 3 + i for i, letter in enumerate(LETTERS)}}
    word_level = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    t5_tokenizer = PreTrainedTokenizerFast(tokenizer_object=word_level, pad_token="<pad>", eos_token="</s>",
                                           unk_token="<unk>", model_max_length=12)
    vae = _vae((8,), latent_channels=1, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.06,
               scaling_factor=1.5)
    pipe = FluxPipeline(transformer=transformer, vae=vae, text_encoder=_clip_text(16),
                        text_encoder_2=t5, tokenizer=clip_tokenizer(out / "vocab"), tokenizer_2=t5_tokenizer,
                        scheduler=FlowMatchEulerDiscreteScheduler())
    pipe.save_pretrained(str(out / "pipeline"))
    return out / "pipeline"


def write_images(folder: Path, count: int = 4, size: tuple[int, int] = (24, 20), captions: bool = True) -> Path:
    """``count`` small RGB images (seeded noise over a colour), each with a one-word caption file."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        base = np.array([[[40 * index % 255, 200, 90]]], dtype=np.float32)
        pixels = np.clip(base + rng.normal(0, 30, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"image{index}.png")
        if captions:
            (folder / f"image{index}.txt").write_text(["a red cat", "a blue dog", "a green bird", "a sks toy"][index % 4])
    return folder
