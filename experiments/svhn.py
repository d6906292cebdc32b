"""Experiment 'svhn': SVHN as GIST features (z-scored rows, Gaussian output, K = 10).

    ./run.sh svhn [options]          (or: python experiments/svhn.py [options])
    ./run.sh svhn --help             every setting with its default (gmvae_np/presets.py documents them)
"""
from gmvae_np.cli import main

if __name__ == "__main__":
    main("svhn")
