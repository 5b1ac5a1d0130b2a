"""The model zoo: ``build_model(name, input_shape, num_classes)``."""

from fedwave.models.zoo import build_model, describe_models, model_names, num_parameters

__all__ = ["build_model", "describe_models", "model_names", "num_parameters"]
