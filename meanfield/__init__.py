"""meanfield: the mean-field theory of two-layer neural networks, as a toolkit.

A two-layer network of width m is a measure μ = Σᵢ pᵢ δ_{θᵢ} over neurons
θ = (a, w, b); training it is a Wasserstein gradient flow of the risk F(μ)
(Chizat & Bach 2018; Mei, Montanari & Nguyen 2018).  See ``DESIGN.md`` of the
project for the conventions.
"""

from meanfield.activations import ACTIVATIONS, Activation, get_activation
from meanfield.data import Teacher, as_target, notebook_frame_sizes, sample_inputs
from meanfield.measure import (
    ParticleMeasure,
    balanced,
    gaussian,
    notebook_sphere,
    notebook_teacher,
    spawn_rngs,
    sphere,
)
from meanfield.network import feature, feature_grad, output
from meanfield.velocity import SampleEstimator, VelocityEstimator

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "ParticleMeasure",
    "SampleEstimator",
    "Teacher",
    "VelocityEstimator",
    "__version__",
    "as_target",
    "balanced",
    "feature",
    "feature_grad",
    "gaussian",
    "get_activation",
    "notebook_frame_sizes",
    "notebook_sphere",
    "notebook_teacher",
    "output",
    "sample_inputs",
    "spawn_rngs",
    "sphere",
]
