"""pdekit: scientific machine learning on PDEs."""

__version__ = "0.1.0"
