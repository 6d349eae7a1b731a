"""ModelMill: turn Hugging Face, PyTorch and ONNX models into fast ONNX Runtime models."""

__version__ = "0.1.0"
