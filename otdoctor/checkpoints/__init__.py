"""Checkpoints: the catalog, reading safetensors headers, verifying and downloading."""
