"""Exporting a model: the ONNX graphs, their manifest and int8 variants (`onnx_export`); running an export is
`hf_xclip.modeling_ort.XClipOrtModel` (shipped with the model code)."""
