"""Experiment 'mnist': MNIST digits with the convolutional networks (K = 14, Bernoulli output).

    ./run.sh mnist [options]          (or: python experiments/mnist.py [options])
    ./run.sh mnist --help             every setting with its default (gmvae_np/presets.py documents them)
"""
from gmvae_np.cli import main

if __name__ == "__main__":
    main("mnist")
