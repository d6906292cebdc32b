"""Draw the teaching diagrams of the docs (docs/figures/*.png) with matplotlib; no run, no data needed.

    python docs/make_diagrams.py                 redraw every diagram into docs/figures
    python docs/make_diagrams.py --out DIR       ... into another folder

The result figures of the experiments are made by make_figures.py, from training runs; these are
made from code alone, in a few seconds:

    vae_model.png                 the plain VAE as a graphical model (docs/vae.md)
    reparameterisation.png        sampling inside the graph, and the reparameterised sample (docs/vae.md)
    gmvae_graphical_models.png    the GMVAE's generative and recognition models (docs/gmvae.md)
    gmvae_loss.png                model.loss: one batch through the networks and the ELBO terms (docs/gmvae.md)
    autodiff_graph.png            ag.draw_graph of L = log(a * b + a), its edges labelled (docs/autodiff.md)
    vae_samples.png               the samples of the VAE docs/vae.md trains, by running its blocks (docs/vae.md)
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Rectangle  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
try:
    import autograd_lite as ag
except ImportError:  # a checkout that was not installed
    sys.path.insert(0, str(ROOT))
    import autograd_lite as ag

MAX_BYTES = 300_000
DPI = 110
OBSERVED, LATENT, NETWORK, TERM, NOISE = "#c9c9c9", "white", "#dbe9f6", "#fde9c8", "#f6d5d5"


# -- drawing helpers -------------------------------------------------------------------------------

def _node(ax, xy, label, observed=False, r=0.32, fontsize=15):
    ax.add_patch(Circle(xy, r, fc=OBSERVED if observed else LATENT, ec="black", lw=1.4, zorder=3))
    ax.text(*xy, label, ha="center", va="center", fontsize=fontsize, zorder=4)


def _arrow(ax, a, b, r=0.32, dashed=False, colour="black", rad=0.0, lw=1.4):
    """An arrow between two circles of radius r: it starts and ends on their rims, not at their centres."""
    (xa, ya), (xb, yb) = a, b
    length = ((xb - xa) ** 2 + (yb - ya) ** 2) ** 0.5
    ux, uy = (xb - xa) / length, (yb - ya) / length
    turn = -2.0 * rad   # an arc leaves its end at about this angle to the chord (radians, small rad)
    sx, sy = ux - turn * uy, uy + turn * ux      # the start direction, turned towards the arc's side
    ex, ey = ux + turn * uy, uy - turn * ux      # the arrival direction
    ns, ne = (sx * sx + sy * sy) ** 0.5, (ex * ex + ey * ey) ** 0.5
    start = (xa + r * sx / ns, ya + r * sy / ns)
    end = (xb - r * ex / ne, yb - r * ey / ne)
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, lw=lw, color=colour,
                                 linestyle="--" if dashed else "-", shrinkA=0, shrinkB=0,
                                 connectionstyle=f"arc3,rad={rad}", zorder=2))


def _box(ax, xy, w, h, text, colour=NETWORK, fontsize=9, bold_first=False):
    x, y = xy
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                fc=colour, ec="0.25", lw=1.0, zorder=3))
    lines = text.split("\n")
    if bold_first and len(lines) > 1:
        ax.text(x, y + 0.09 * (len(lines) - 1) * fontsize / 9, lines[0], ha="center", va="center",
                fontsize=fontsize, weight="bold", zorder=4)
        ax.text(x, y - 0.1 * fontsize / 9, "\n".join(lines[1:]), ha="center", va="center", fontsize=fontsize - 1,
                zorder=4, family="monospace")
    else:
        ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, zorder=4)


def _link(ax, a, b, colour="0.3", rad=0.0, dashed=False, lw=1.1):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=11, lw=lw, color=colour, zorder=2,
                                 linestyle="--" if dashed else "-", connectionstyle=f"arc3,rad={rad}"))


def _finish(ax, xlim, ylim, title=None):
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=12)


# -- the figures -----------------------------------------------------------------------------------

def draw_vae_model(path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(4.2, 3.4))
    z, x = (1.0, 2.0), (1.0, 0.5)
    ax.add_patch(Rectangle((0.2, 0.0), 2.4, 2.55, fill=False, lw=1.0))
    ax.text(2.5, 0.08, "N", ha="right", va="bottom", fontsize=11)
    _node(ax, z, "$z$")
    _node(ax, x, "$x$", observed=True)
    _arrow(ax, z, x)
    _arrow(ax, x, z, dashed=True, rad=-0.55, colour="#b03030")
    ax.text(1.1, 1.25, r"$p_\theta(x \mid z)$", ha="left", va="center", fontsize=11)
    ax.text(0.38, 1.25, r"$q_\phi(z \mid x)$", ha="right", va="center", fontsize=11, color="#b03030")
    ax.text(1.45, 2.0, r"$p(z) = \mathcal{N}(0, I)$", ha="left", va="center", fontsize=10)
    _finish(ax, (-0.6, 3.4), (-0.1, 2.65))
    ax.set_title("the VAE: generative (solid), inference (dashed)", fontsize=10)
    return _save(fig, path)


def draw_reparameterisation(path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0))
    y0 = 1.5
    widths = {"phi": 1.1, "stats": 1.0, "z": 1.7, "f": 0.9}
    centres = {"phi": 0.7, "stats": 2.3, "z": 4.2, "f": 6.0}
    edges = lambda name: (centres[name] - widths[name] / 2, centres[name] + widths[name] / 2)  # noqa: E731
    for ax, reparam in zip(axes, (False, True)):
        widths["z"] = 1.7 if reparam else 1.24          # a box, or the circle of a random draw
        _box(ax, (centres["phi"], y0), widths["phi"], 0.7, "encoder\n" + r"weights $\phi$", NETWORK, fontsize=10)
        _box(ax, (centres["stats"], y0), widths["stats"], 0.7, r"$\mu,\ \sigma$", NETWORK, fontsize=12)
        _box(ax, (centres["f"], y0), widths["f"], 0.7, r"$f(z)$", TERM, fontsize=12)
        for a, b in (("phi", "stats"), ("stats", "z"), ("z", "f")):
            _link(ax, (edges(a)[1], y0), (edges(b)[0], y0))
        if not reparam:
            ax.add_patch(Circle((centres["z"], y0), 0.62, fc=NOISE, ec="black", lw=1.2, zorder=3))
            ax.text(centres["z"], y0, r"$z \sim$" + "\n" + r"$\mathcal{N}(\mu, \sigma^2)$", ha="center",
                    va="center", fontsize=10, zorder=4)
            ax.annotate("", xy=(edges("stats")[1] + 0.05, y0 - 0.55), xytext=(centres["z"] - 0.1, y0 - 0.7),
                        arrowprops=dict(arrowstyle="-|>", color="#b03030", lw=1.3, linestyle="--"))
            ax.text(3.05, y0 - 0.55, "✗", color="#b03030", fontsize=15, ha="center", va="center")
            ax.text(3.3, 0.2, "a random draw has no derivative: the gradient of\n"
                    r"$\mathbb{E}[f(z)]$ must come from the score function, which is noisy",
                    ha="center", va="center", fontsize=9, color="#b03030")
            title = "sampling inside the graph"
        else:
            _box(ax, (centres["z"], y0), widths["z"], 0.7, r"$z = \mu + \sigma \odot \varepsilon$", TERM, fontsize=11)
            ax.add_patch(Circle((centres["z"], 2.85), 0.45, fc=NOISE, ec="black", lw=1.2, zorder=3))
            ax.text(centres["z"], 2.85, r"$\varepsilon \sim$" + "\n" + r"$\mathcal{N}(0, I)$", ha="center",
                    va="center", fontsize=9, zorder=4)
            _link(ax, (centres["z"], 2.4), (centres["z"], y0 + 0.37))
            for a, b in (("f", "z"), ("z", "stats"), ("stats", "phi")):
                ax.annotate("", xy=(edges(b)[1] + 0.03, y0 - 0.5), xytext=(edges(a)[0] - 0.03, y0 - 0.5),
                            arrowprops=dict(arrowstyle="-|>", color="#2a6f2a", lw=1.4, linestyle="--"))
            ax.text(3.3, 0.2, "the randomness is an input: the gradient flows back through\n"
                    r"$z$ to $\mu$, $\sigma$ and $\phi$ (a pathwise gradient), as through any op",
                    ha="center", va="center", fontsize=9, color="#2a6f2a")
            title = "reparameterised: z is a function of μ, σ and the noise ε"
        _finish(ax, (0.0, 6.6), (-0.2, 3.4), title)
    return _save(fig, path)


def draw_gmvae_graphical_models(path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 4.4))
    ax = axes[0]
    w, z, x, y = (0.6, 2.6), (2.4, 2.6), (1.5, 1.5), (1.5, 0.4)
    ax.add_patch(Rectangle((0.05, -0.05), 3.0, 3.15, fill=False, lw=1.0))
    ax.text(2.95, 0.0, "N", ha="right", va="bottom", fontsize=11)
    for xy, label, obs in ((w, "$w$", False), (z, "$z$", False), (x, "$x$", False), (y, "$y$", True)):
        _node(ax, xy, label, observed=obs)
    for a, b in ((w, x), (z, x), (x, y)):
        _arrow(ax, a, b)
    ax.text(0.6, 2.15, r"$\mathcal{N}(0, I)$", ha="center", fontsize=9)
    ax.text(2.4, 2.15, r"$\mathrm{Mult}(\pi)$", ha="center", fontsize=9)
    ax.text(1.95, 1.5, r"$\mathcal{N}(\mu_z(w), \sigma_z^2(w))$", ha="left", va="center", fontsize=9)
    ax.text(1.95, 0.4, r"$p(y \mid x)$: decoder", ha="left", va="center", fontsize=9)
    _finish(ax, (0.0, 3.9), (-0.2, 3.3), "generative model p(y, x, w, z)")

    ax = axes[1]
    w, z, x, y = (0.6, 2.6), (2.4, 2.6), (1.5, 1.5), (1.5, 0.4)
    ax.add_patch(Rectangle((0.05, -0.05), 3.0, 3.15, fill=False, lw=1.0))
    ax.text(2.95, 0.0, "N", ha="right", va="bottom", fontsize=11)
    for xy, label, obs in ((w, "$w$", False), (z, "$z$", False), (x, "$x$", False), (y, "$y$", True)):
        _node(ax, xy, label, observed=obs)
    _arrow(ax, y, x)
    _arrow(ax, y, w, rad=-0.35)
    _arrow(ax, y, z, rad=0.35, colour="#1f5fa8")
    _arrow(ax, x, z, dashed=True, colour="#b03030")
    _arrow(ax, w, z, dashed=True, colour="#b03030")
    ax.text(0.25, 1.0, r"$q(w \mid y)$", ha="center", fontsize=9)
    ax.text(1.58, 0.98, r"$q(x \mid y)$", ha="left", fontsize=9)
    ax.text(2.75, 1.0, r"$q(z \mid y)$" + "\n(cv)", ha="center", fontsize=9, color="#1f5fa8")
    ax.text(1.5, 2.95, r"$p(z \mid x, w)$ (mi)", ha="center", fontsize=9, color="#b03030")
    _finish(ax, (0.0, 3.9), (-0.2, 3.3), "recognition model q(x, w, z | y)")
    fig.text(0.5, 0.02, "shaded: observed.  cv: q(z|y) is a head of the recognition network.  "
             "mi: the cluster posterior is the generative model's own p(z|x,w), by Bayes' rule.",
             ha="center", fontsize=8.5)
    return _save(fig, path)


def draw_gmvae_loss(path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(15, 7.4))
    H = 0.78
    c0, c1, c2, c3, c4, c5 = 0.9, 3.1, 5.4, 7.9, 10.5, 13.2      # the columns, left to right
    boxes = {   # name: (centre, width, text, colour)
        "y": ((c0, 3.2), 1.6, "y\n(B, D)", OBSERVED),
        "body": ((c1, 3.2), 1.9, "encoder body\n(B, hidden)", NETWORK),
        "qx": ((c2, 5.2), 1.9, "q(x|y)\nmean, logvar\n(B, Dx) each", NETWORK),
        "qw": ((c2, 3.2), 1.9, "q(w|y)\nmean, logvar\n(B, Dw) each", NETWORK),
        "qz": ((c2, 1.2), 1.9, "q(z|y) [cv]\nlog_softmax\n(B, K)", NETWORK),
        "epsx": ((c3, 6.55), 1.9, "ε_x ~ N(0, I)\n(M, B, Dx)", NOISE),
        "epsw": ((c3, 1.85), 1.9, "ε_w ~ N(0, I)\n(M, B, Dw)", NOISE),
        "x": ((c3, 5.2), 2.2, "x = mean + σ ε_x\n(M, B, Dx)", TERM),
        "w": ((c3, 3.2), 2.2, "w = mean + σ ε_w\n(M, B, Dw)", TERM),
        "dec": ((c4, 6.4), 2.0, "decoder p(y|x)\n(M, B, D)", NETWORK),
        "post": ((c4, 4.75), 2.0, "z_posterior\nlog p(z|x,w)\n(M, B, K)", NETWORK),
        "prior": ((c4, 3.2), 2.3, "prior network\nμ_k(w), log σ²_k(w)\n(M, B, K, Dx)", NETWORK),
        "rec": ((c5, 6.6), 2.3, "reconstruction\n(B,)", TERM),
        "cp": ((c5, 5.35), 2.3, "conditional_prior\n(B,)", TERM),
        "cv": ((c5, 4.1), 2.3, "consistency_violation\n(B,)", TERM),
        "wp": ((c5, 2.85), 2.3, "w_prior\n(B,)", TERM),
        "zp": ((c5, 1.6), 2.3, "z_prior\n(B,)", TERM),
        "obj": ((c5, 0.2), 2.3, "objective: a scalar\nneg_elbo: (B,)", "#e3f1dc"),
    }
    for name, (xy, w, text, colour) in boxes.items():
        _box(ax, xy, w, H + (0.2 if text.count("\n") > 1 else 0), text, colour, fontsize=9, bold_first=True)

    def right(name, dy=0.0):
        (x, y), w = boxes[name][0], boxes[name][1]
        return (x + w / 2, y + dy)

    def left(name, dy=0.0):
        (x, y), w = boxes[name][0], boxes[name][1]
        return (x - w / 2, y + dy)

    def vertical(a, b):
        (xa, ya), (xb, yb) = boxes[a][0], boxes[b][0]
        sign = 1 if yb > ya else -1
        _link(ax, (xa, ya + sign * 0.42), (xb, yb - sign * 0.52))

    for a, b in (("y", "body"), ("body", "qx"), ("body", "qw"), ("body", "qz"), ("qx", "x"), ("qw", "w"),
                 ("x", "dec"), ("w", "prior"), ("x", "post"), ("dec", "rec"), ("post", "cv"), ("prior", "cp"),
                 ("qz", "zp")):
        _link(ax, right(a), left(b))
    _link(ax, right("qw", -0.3), left("wp", -0.2), rad=0.07)        # under the sampling and the prior network
    for a, b in (("epsx", "x"), ("epsw", "w"), ("prior", "post")):
        vertical(a, b)
    _link(ax, (c0, 3.62), left("rec", 0.15), colour="0.55", rad=-0.25, dashed=True)       # y into the reconstruction
    _link(ax, (c2 + 0.5, 5.72), left("cp", 0.1), colour="0.55", rad=-0.15, dashed=True)   # q(x|y) into the KLs
    # cv: the q(z|y) weights into the conditional prior, along the bottom and up the gap between the
    # networks' column and the terms' column, so that the line crosses no box
    gap_x = (right("prior")[0] + left("cp")[0]) / 2
    start = right("qz", -0.15)
    ax.plot([start[0], gap_x, gap_x], [start[1], start[1], boxes["cp"][0][1] - 0.15], color="#1f5fa8", lw=1.1,
            ls="--", zorder=2)
    _link(ax, (gap_x, boxes["cp"][0][1] - 0.15), left("cp", -0.15), colour="#1f5fa8", dashed=True)
    _link(ax, right("post", 0.2), left("cp", -0.05), colour="#b03030", dashed=True)      # mi: p(z|x,w) weights
    _link(ax, right("post", -0.25), left("zp", 0.15), colour="#b03030", rad=-0.1, dashed=True)   # mi: KL(p(z|x,w) || pi)
    for term in ("rec", "cp", "cv", "wp", "zp"):
        _link(ax, right(term), right("obj", 0.1), colour="0.6", rad=-0.25)
    ax.text(c5 + 1.75, 0.45, "weighted sum,\nmean over B", fontsize=8.5, ha="left", va="center", color="0.3")
    ax.text(0.1, 7.3, "model.loss(y): B data points, M = config.mc samples of (x, w) each, K clusters",
            fontsize=11, weight="bold")
    ax.text(0.1, 0.2, "blue dashed: cluster weights q(z|y) (cv)      red dashed: cluster weights p(z|x,w) (mi)\n"
            "grey dashed: y and q(x|y) enter the terms directly      each term: a Monte Carlo mean over M, (B,)",
            fontsize=8.5, va="center", color="0.25")
    _finish(ax, (0.0, 15.6), (-0.4, 7.5))
    return _save(fig, path)


def draw_autodiff_graph(path: Path) -> Path:
    a = ag.tensor(2.0, requires_grad=True, dtype="float64")
    b = ag.tensor(3.0, requires_grad=True, dtype="float64")
    c = a * b
    d = c + a
    L = ag.log(d)
    fig = ag.draw_graph(L, names={"a": a, "b": b, "c": c, "d": d, "L": L})
    local = {("a", "c"): "∂c/∂a = b = 3", ("b", "c"): "∂c/∂b = a = 2", ("c", "d"): "∂d/∂c = 1",
             ("a", "d"): "∂d/∂a = 1", ("d", "L"): "∂L/∂d = 1/d = 0.125"}
    _label_edges(fig.axes[0], local)
    fig.suptitle("L = log(a * b + a): data flows left to right, gradients dL/d(node) right to left;\n"
                 "each edge carries its local derivative, and a node's gradient is the sum over its out-edges "
                 "of (edge) x (gradient at the edge's end)", fontsize=9)
    return _save(fig, path, dpi=90)


def _label_edges(ax, labels: dict) -> None:
    """Write labels[(input name, result name)] on the arrows that ag.draw_graph drew in ax.

    draw_graph draws each node as a box with its name on the first line of its text, and each edge as
    an arrow from the right side of the input's box to the left side of the result's box; the boxes are
    0.8 wide. An arrow that skips a column is an arc, whose middle is found as matplotlib's arc3 puts it.
    """
    from matplotlib.text import Annotation

    half = 0.4
    centres = {(round(t.get_position()[0], 6), round(t.get_position()[1], 6)): t.get_text().split("\n")[0]
               for t in ax.texts if not isinstance(t, Annotation)}
    found = set()
    for arrow in (t for t in ax.texts if isinstance(t, Annotation)):
        (x1, y1), (x0, y0) = arrow.xy, arrow.xyann
        parent = centres[(round(x0 - half, 6), round(y0, 6))]
        child = centres[(round(x1 + half, 6), round(y1, 6))]
        rad = float(arrow.arrow_patch.get_connectionstyle().rad)
        a, b = ax.transData.transform((x0, y0)), ax.transData.transform((x1, y1))
        mid = (a + b) / 2 + rad / 2 * np.array([b[1] - a[1], -(b[0] - a[0])])   # the Bezier curve's middle
        x, y = ax.transData.inverted().transform(mid)
        ax.text(x, y, labels[(parent, child)], ha="center", va="center", fontsize=7, color="#1f5fa8",
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none"), zorder=5)
        found.add((parent, child))
    if found != set(labels):
        raise RuntimeError(f"edges drawn {sorted(found)} are not the edges labelled {sorted(labels)}")


def draw_vae_samples(path: Path) -> Path:
    """The samples of the VAE that docs/vae.md trains: the page's own Python blocks run, in order, in a
    temporary folder (their printing silenced), and the picture its last block saves is kept, so the
    figure is what that code draws."""
    page = (ROOT / "docs" / "vae.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python[^\n]*\n(.*?)^```", page, flags=re.DOTALL | re.MULTILINE)
    cwd = Path.cwd()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        try:
            namespace = {"__name__": "__main__"}
            with contextlib.redirect_stdout(io.StringIO()):
                for code in blocks:
                    exec(compile(code, str(ROOT / "docs" / "vae.md"), "exec"), namespace)  # noqa: S102 - our page
            plt.close("all")
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(folder) / "vae_samples.png", path)
        finally:
            os.chdir(cwd)
    if path.stat().st_size >= MAX_BYTES:
        raise RuntimeError(f"{path.name} is {path.stat().st_size:,} bytes; keep figures under {MAX_BYTES:,}")
    return path


def _save(fig, path: Path, dpi: int = DPI) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    size = path.stat().st_size
    if size >= MAX_BYTES:
        raise RuntimeError(f"{path.name} is {size:,} bytes; keep figures under {MAX_BYTES:,}")
    return path


DIAGRAMS = {
    "vae_model.png": draw_vae_model,
    "reparameterisation.png": draw_reparameterisation,
    "gmvae_graphical_models.png": draw_gmvae_graphical_models,
    "gmvae_loss.png": draw_gmvae_loss,
    "autodiff_graph.png": draw_autodiff_graph,
    "vae_samples.png": draw_vae_samples,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "figures", help="folder to write into")
    args = parser.parse_args(argv)
    for name, draw in DIAGRAMS.items():
        path = draw(args.out / name)
        print(f"wrote {path} ({path.stat().st_size / 1000:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
