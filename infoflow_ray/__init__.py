"""infoflow-ray: predict where deep tanh networks are trainable, before training, at cluster scale on Ray.

The science modules (config, data, model, cascade, entropy, cutoff, theory, training, predict) import neither
Ray nor polars; the Ray layer lives in ``infoflow_ray.sweep``.
"""

__version__ = "0.1.0"
