"""Reference implementations for *Softmax from First Principles*.

The chapters derive each function, then import it from here so that no
notebook copies another's code.
"""

from .core import log_softmax, logsumexp, softmax

__version__ = "0.1.0"

__all__ = ["softmax", "log_softmax", "logsumexp", "__version__"]
