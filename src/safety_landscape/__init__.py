"""Measure how robust a language model's safety alignment is: its safety landscape and VISAGE score."""

__version__ = "0.1.0"
