"""Deployment: ONNX export of the inference networks (more to come: backends, serving)."""

from pixelsmith.deploy.export import check_onnx, export_onnx, exportable, read_metadata

__all__ = ["check_onnx", "export_onnx", "exportable", "read_metadata"]
