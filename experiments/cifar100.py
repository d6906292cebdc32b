"""Experiment 'cifar100': CIFAR-100 as pretrained-network features (z-scored rows, Gaussian output, K = 100).

    ./run.sh cifar100 [options]          (or: python experiments/cifar100.py [options])
    ./run.sh cifar100 --help             every setting with its default (gmvae_np/presets.py documents them)
"""
from gmvae_np.cli import main

if __name__ == "__main__":
    main("cifar100")
