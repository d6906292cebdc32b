"""gmvae_np: the Gaussian-mixture VAE of Dilokthanakul et al. (2016), built on autograd_lite.

    >>> import autograd_lite as ag
    >>> from gmvae_np import GMVAE, GMVAEConfig, Adam
    >>> model = GMVAE(GMVAEConfig(input_shape=(2,), likelihood="gaussian", K=3, Dx=2, Dw=2, hidden=16))
    >>> opt = Adam(model.parameters(), lr=1e-3)
    >>> out = model.loss(ag.randn(8, 2))
    >>> opt.zero_grad(); out.objective.backward(); opt.step()

Reading order, for a learner (docs/architecture.md is the map of every module and its layer):

1. docs/gmvae.md       the model and its bound, derived term by term, with pointers into the code
2. module.py, layers.py  Module and Parameter; Linear, Conv2d, ConvTranspose2d, BatchNorm, activations
3. elbo.py             each ELBO term as a small function named after it; how cv and mi combine them
4. model.py            GMVAEConfig and GMVAE: the three networks, loss(), and inference (predict, sample)
5. optim.py            Adam (and why the original code's Adam was really sign descent)
6. checkpoint.py       one atomic .npz per checkpoint (atomic.py); refusing corrupt or foreign files
7. data/, metrics.py, train.py, rundir.py, plots/   the data sets, the clustering scores, the loop
   (train_step at its top), the run directory, the figures

The engine underneath (tensors, primitives, gradient checks) is the autograd_lite package.
"""
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, restore, save_checkpoint
from .layers import (BatchNorm, Conv2d, ConvTranspose2d, Flatten, Identity, Linear, Module, ModuleList,
                     Parameter, ReLU, Reshape, Sequential, Sigmoid, Tanh)
from .model import GMVAE, GMVAEConfig, LossResult
from .optim import SGD, Adam
from .version import __version__

__all__ = [
    "GMVAE", "GMVAEConfig", "LossResult", "Adam", "SGD",
    "Module", "Parameter", "Linear", "Conv2d", "ConvTranspose2d", "BatchNorm", "ReLU", "Tanh", "Sigmoid",
    "Identity", "Flatten", "Reshape", "Sequential", "ModuleList",
    "Checkpoint", "CheckpointError", "save_checkpoint", "load_checkpoint", "restore",
]
from .estimator import GMVAEClustering
