"""Experiment 'custom': your own matrix: --data PATH (.npy, .npz or .csv, one sample per row) [--labels PATH or column].

    ./run.sh custom [options]          (or: python experiments/custom.py [options])
    ./run.sh custom --help             every setting with its default (gmvae_np/presets.py documents them)
"""
from gmvae_np.cli import main

if __name__ == "__main__":
    main("custom")
