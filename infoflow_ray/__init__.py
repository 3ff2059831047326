"""infoflow-ray: predict where deep tanh networks are trainable, before training, at cluster scale on Ray.

The handful of things a user calls, importable from here:

>>> from infoflow_ray import CascadeSpec, NetworkSpec, load_dataset, predict_trainability, theory
>>> data = load_dataset("mnist_t10k")  # the bundled 8,000 train / 2,000 test images, pixels in [0, 1]
>>> p = predict_trainability(NetworkSpec(sigma_w2=1.76, depth=8), CascadeSpec(eval_samples=200), data, seed=0)
>>> p.kl_mean.shape  # the mean KL curve over layers 0 (the input) .. L, nats
(9,)
>>> 1 <= p.per_image_cutoff_mean <= p.cutoff_last_layer  # the cutoff ℓ_c, in layers
True
>>> round(theory.critical_sigma_w2(0.05), 3)  # mean field: χ1 = 1 at σb² = 0.05
1.761

and, for grids on Ray: ``resolve_grid("tiny")`` then ``run_grid(grid)`` (``infoflow_ray.sweep``), results read
back with ``ResultStore.open(location, create=False).scan(table)`` (polars) or ``analysis``; ``train_baseline``
trains one network; ``search`` holds the adaptive search's decisions as pure functions.

The science modules (config, data, model, cascade, entropy, cutoff, theory, training, predict) import neither
Ray nor polars; the Ray layer lives in ``infoflow_ray.sweep``. The names that need Ray or polars (``run_grid``,
``resolve_grid``, ``ResultStore``, ``analysis``) load on first use, so ``import infoflow_ray`` stays light.
"""

from importlib import import_module

from infoflow_ray import search, theory
from infoflow_ray.config import CascadeSpec, NetworkSpec, TrainSpec
from infoflow_ray.data import load_dataset
from infoflow_ray.predict import predict_trainability
from infoflow_ray.training import train_baseline

__version__ = "0.1.0"

_LAZY = {
    "run_grid": ("infoflow_ray.sweep.driver", "run_grid"),
    "resolve_grid": ("infoflow_ray.sweep.grid", "resolve_grid"),
    "ResultStore": ("infoflow_ray.store", "ResultStore"),
    "analysis": ("infoflow_ray.analysis", None),
}

__all__ = [
    "CascadeSpec",
    "NetworkSpec",
    "TrainSpec",
    "load_dataset",
    "predict_trainability",
    "train_baseline",
    "theory",
    "search",
    *_LAZY,
    "__version__",
]


def __getattr__(name: str):
    """The Ray- and polars-backed names, imported when first used (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'infoflow_ray' has no attribute '{name}'")
    module, attribute = _LAZY[name]
    value = import_module(module) if attribute is None else getattr(import_module(module), attribute)
    globals()[name] = value
    return value
