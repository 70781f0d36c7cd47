"""Policy bundles: export a checkpoint to ONNX (onnx_export.py, needs PyTorch) and read/validate a
bundle (bundle.py, NumPy + ONNX Runtime only: what the policy node uses)."""
