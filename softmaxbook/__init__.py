"""Reference implementations for *Softmax from First Principles*.

The chapters derive each function, then import it from here so that no
notebook copies another's code.
"""

from .scaled_attention import attention, flash_attention, flash_attention_backward
from .core import log_softmax, logsumexp, softmax
from .fast import fast_softmax, merge_normalizers, online_normalizer, online_softmax
from .jacobian import softmax_jacobian, softmax_jvp
from .kernel import softmax_kernel
from .large_output import (hierarchical_softmax_log_prob, huffman_tree, sample_classes,
                           sampled_softmax_loss)
from .losses import cross_entropy, cross_entropy_grad
from .sparse import (entmax15, entmax_bisect, gumbel_softmax, sparsemax, sparsemax_loss,
                     top_k_top_p_filter)

__version__ = "0.4.0"

__all__ = [
    "softmax",
    "log_softmax",
    "logsumexp",
    "softmax_jacobian",
    "softmax_jvp",
    "cross_entropy",
    "cross_entropy_grad",
    "fast_softmax",
    "online_softmax",
    "online_normalizer",
    "merge_normalizers",
    "softmax_kernel",
    "attention",
    "flash_attention",
    "flash_attention_backward",
    "sparsemax",
    "entmax15",
    "entmax_bisect",
    "sparsemax_loss",
    "gumbel_softmax",
    "top_k_top_p_filter",
    "huffman_tree",
    "hierarchical_softmax_log_prob",
    "sampled_softmax_loss",
    "sample_classes",
    "__version__",
]

# Imported with the package, so that it captures NumPy's test helpers before any exercise
# answer runs (see softmaxbook.grading.check_helpers).
from . import grading  # noqa: E402,F401
