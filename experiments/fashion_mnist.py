"""Experiment 'fashion_mnist': Fashion-MNIST with the convolutional networks (K = 10, Bernoulli output).

    ./run.sh fashion-mnist [options]          (or: python experiments/fashion_mnist.py [options])
    ./run.sh fashion-mnist --help             every setting with its default (gmvae_np/presets.py documents them)
"""
from gmvae_np.cli import main

if __name__ == "__main__":
    main("fashion_mnist")
