"""Experiment 'spiral': the spiral: 5 curved arms of 1,000 points in the plane, clustered with K = 8 (Gaussian output).

    ./run.sh spiral [options]          (or: python experiments/spiral.py [options])
    ./run.sh spiral --help             every setting with its default (gmvae_np/presets.py documents them)
"""
from gmvae_np.cli import main

if __name__ == "__main__":
    main("spiral")
