"""Experiment 'stl10': STL-10 as pretrained-network features (z-scored rows, Gaussian output, K = 10, no test split).

    ./run.sh stl10 [options]          (or: python experiments/stl10.py [options])
    ./run.sh stl10 --help             every setting with its default (gmvae_np/presets.py documents them)
"""
from gmvae_np.cli import main

if __name__ == "__main__":
    main("stl10")
