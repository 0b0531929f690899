"""stilts: English intermediate-task training and zero-shot cross-lingual transfer on XTREME-R."""

import warnings

# tqdm.auto (imported by datasets and transformers) warns in every Jupyter kernel that lacks
# ipywidgets; the book's notebooks draw no progress bars, so on their pages it is only noise.
warnings.filterwarnings("ignore", message="IProgress not found")

__version__ = "0.1.0"
