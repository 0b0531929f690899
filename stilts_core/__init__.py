"""stilts: English intermediate-task training and zero-shot cross-lingual transfer on XTREME-R."""

__version__ = "0.1.0"
