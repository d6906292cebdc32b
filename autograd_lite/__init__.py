"""autograd_lite: a small reverse-mode automatic differentiation engine on a swappable array backend.

    >>> import autograd_lite as ag
    >>> x = ag.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad            # dy/dx = 2x
    array([2., 4., 6.], dtype=float32)

Files, in reading order: backend.py (where arrays live), random.py (seeded generators), tensor.py
(the graph and backward), ops.py (the primitives, forward next to backward), conv.py (convolutions
from one patch gather), norm.py (batch normalisation as one primitive), functional.py (composites
built from primitives), gradcheck.py (finite-difference checks), viz.py (draw_graph: the recorded
graph and its gradients, drawn with matplotlib), profiler.py (profile: the time of each op, forward
and backward), threads.py (the engine's own threads, for the work BLAS does not spread). Each file
imports only files before it.
"""
from .backend import (BACKEND_NAMES, Backend, BackendError, BackendMismatchError, get_backend,
                      dtype_name, gpu_available)
from .random import Generator, default_generator
from .tensor import Tensor, is_grad_enabled, no_grad, one_hot, ones, randn, sum_to, tensor, zeros
from .ops import (abs, add, astype, broadcast_to, clamp, concat, cos, div, exp, getitem, log, log1p,
                  log_softmax, logsumexp, matmul, max, maximum, mean, mul, neg, permute, pow, relu,
                  reshape, sigmoid, sin, softmax, softplus, sqrt, square, sub, sum, take, tanh, transpose,
                  where)
from .conv import conv2d, conv_transpose2d
from .norm import batch_norm, batch_norm_normalize
from .gradcheck import GradcheckError, gradcheck
from .viz import draw_graph, node_gradients, trace_graph
from .profiler import Profile, profile
from .threads import get_threads, run_blocks, set_threads, threads
from . import functional
from .functional import chunk, minimum, split, stack

float32 = "float32"
float64 = "float64"

__version__ = "0.1.0"
