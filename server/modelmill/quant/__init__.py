"""PyTorch-level weight quantization of Hugging Face models (the rtn, gptq and SelectiveMixedPrecision passes).

Checkpoints are written in Olive's own format (``quantization_config.quant_method: olive``), which
onnxruntime-genai's model builder reads natively and turns into MatMulNBits without re-quantizing.
Everything here imports torch: import it inside a pass's ``run`` only.
"""
