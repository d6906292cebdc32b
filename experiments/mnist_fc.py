"""Experiment 'mnist_fc': MNIST digits with fully connected networks of width 1000 (K = 14, Bernoulli output).

    ./run.sh mnist-fc [options]          (or: python experiments/mnist_fc.py [options])
    ./run.sh mnist-fc --help             every setting with its default (gmvae_np/presets.py documents them)
"""
from gmvae_np.cli import main

if __name__ == "__main__":
    main("mnist_fc")
