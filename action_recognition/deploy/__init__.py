"""Deployment: ONNX export with its checks, fp16/int8 quantisation, and the Conv3d -> 4D converter.
"""
