"""Conversion of rinna/japanese-cloob-vit-b-16 and rinna/japanese-clip-vit-b-16 checkpoints into libjaclip
model files (PyTorch only)."""
