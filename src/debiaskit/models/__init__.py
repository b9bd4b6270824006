"""Model registry: ``list_models()``, ``create_model(name, *, num_classes, in_shape, **kw)``.

Every model is an ``nn.Module`` that splits into a feature extractor and a linear head::

    model.feature_dim        # int
    model.features(x)        # (B, feature_dim)
    model.head               # nn.Linear(feature_dim, num_classes)
    model(x) == model.head(model.features(x))

Methods that need a different head (e.g. DisEnt's head on the concatenation [z_i; z_b]) replace
``model.head``. Inputs are float images ``(B, C, H, W)`` produced by the dataset's batch transform.
"""

from debiaskit.models.registry import MODELS, auto_model_name, create_model, list_models, register_model

__all__ = ["MODELS", "auto_model_name", "create_model", "list_models", "register_model"]
