"""Experiment 'mnist_graph': the MNIST recipe with the neighbour graph (docs/results.md, section 8).

Not one of the original's experiments: mnist_recipe's networks and steps, plus the neighbour term
(each image and one of its 10 nearest neighbours, measured in PCA-50 of the deskewed images, asked for one
cluster, weight 50; gmvae_np/neighbours.py, docs/gmvae.md section 11), the balance term at 100, 20 epochs
and no restarts.

    ./run.sh mnist-graph [options]           (or: python experiments/mnist_graph.py [options])
    ./run.sh mnist-graph --K 16 --balance 20 over-clustering, as in the paper's K = 16 rows (with the
                                             lighter balance term that K = 16 needs)
    ./run.sh mnist-graph --help              every setting with its default (gmvae_np/presets.py documents them)
"""
from gmvae_np.cli import main

if __name__ == "__main__":
    main("mnist_graph")
