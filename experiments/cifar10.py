"""Experiment 'cifar10': CIFAR-10 as pretrained-network features (z-scored rows, Gaussian output, K = 10).

    ./run.sh cifar10 [options]          (or: python experiments/cifar10.py [options])
    ./run.sh cifar10 --help             every setting with its default (gmvae_np/presets.py documents them)
"""
from gmvae_np.cli import main

if __name__ == "__main__":
    main("cifar10")
