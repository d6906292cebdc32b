"""Experiment 'mnist_recipe': MNIST with fully connected networks and the settings that keep the clusters apart.

Not one of the original's experiments: the changes to the faithful mnist_fc settings that stop the collapse
into a few clusters (smaller latents, larger batches and steps, the batch balance term, restarts chosen
without labels). docs/results.md, section 5, measures each.

    ./run.sh mnist-recipe [options]          (or: python experiments/mnist_recipe.py [options])
    ./run.sh mnist-recipe --K 16             over-clustering, as in the paper's K = 16 rows
    ./run.sh mnist-recipe --help             every setting with its default (gmvae_np/presets.py documents them)
"""
from gmvae_np.cli import main

if __name__ == "__main__":
    main("mnist_recipe")
