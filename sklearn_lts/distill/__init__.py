"""Distillation half: byte-level cross-tokenizer distillation (text in, a student model out)."""
