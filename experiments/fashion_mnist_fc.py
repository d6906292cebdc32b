"""Experiment 'fashion_mnist_fc': Fashion-MNIST with fully connected networks of width 1000 (K = 10, Bernoulli output).

    ./run.sh fashion-mnist-fc [options]          (or: python experiments/fashion_mnist_fc.py [options])
    ./run.sh fashion-mnist-fc --help             every setting with its default (gmvae_np/presets.py documents them)
"""
from gmvae_np.cli import main

if __name__ == "__main__":
    main("fashion_mnist_fc")
