"""Experiment 'fashion_mnist_graph': the MNIST graph recipe carried to Fashion-MNIST (docs/results.md, section 8).

Not one of the original's experiments: mnist_graph's networks, steps and weights (the neighbour term at 50,
the balance term at 100, 20 epochs, no restarts), with the graph's 10 nearest neighbours measured in the
pixels' PCA-50. Of the spaces measured (``python docs/neighbour_study.py --spaces fashion-mnist``), deskew
lowers the share of edges within one class and the contrast space raises it most, but trained lower than
PCA-50 on the two seeds run (docs/results.md, section 8). Without --data-dir the data comes from the installed Debian package, else the cache,
else one ``apt-get download dataset-fashion-mnist`` (gmvae_np/data/mnist.py).

    ./run.sh fashion-mnist-graph [options]   (or: python experiments/fashion_mnist_graph.py [options])
    ./run.sh fashion-mnist-graph --help      every setting with its default (gmvae_np/presets.py documents them)
"""
from gmvae_np.cli import main

if __name__ == "__main__":
    main("fashion_mnist_graph")
