"""meanfield: the mean-field theory of two-layer neural networks, as a toolkit.

A two-layer network of width m is a measure μ = Σᵢ pᵢ δ_{θᵢ} over neurons
θ = (a, w, b); training it is a Wasserstein gradient flow of the risk F(μ)
(Chizat & Bach 2018; Mei, Montanari & Nguyen 2018).  See ``DESIGN.md`` of the
project for the conventions.
"""

from meanfield.activations import ACTIVATIONS, Activation, get_activation
from meanfield.data import Teacher, as_target, notebook_frame_sizes, sample_inputs
from meanfield.diagnostics import optimality_certificate, trajectory_diagnostics
from meanfield.flow import euler, integrate, snapshot_times
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
from meanfield.notebook import notebook_run
from meanfield.population import GaussianPopulationEstimator
from meanfield.recovery import teacher_recovery
from meanfield.separation import check_separation, empirical_separation
from meanfield.sgd import minibatch_sgd, online_sgd, step_from_tau
from meanfield.streams import ArrayStream, DatasetStream, FrameStream, OnlineStream
from meanfield.support import Support, support_of
from meanfield.trajectory import DivergenceError, Trajectory, load_trajectory
from meanfield.velocity import SampleEstimator, VelocityEstimator

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "ArrayStream",
    "DatasetStream",
    "DivergenceError",
    "FrameStream",
    "GaussianPopulationEstimator",
    "OnlineStream",
    "ParticleMeasure",
    "SampleEstimator",
    "Support",
    "Teacher",
    "Trajectory",
    "VelocityEstimator",
    "__version__",
    "as_target",
    "balanced",
    "check_separation",
    "empirical_separation",
    "euler",
    "feature",
    "feature_grad",
    "gaussian",
    "get_activation",
    "integrate",
    "load_trajectory",
    "minibatch_sgd",
    "notebook_frame_sizes",
    "notebook_run",
    "notebook_sphere",
    "notebook_teacher",
    "online_sgd",
    "optimality_certificate",
    "output",
    "sample_inputs",
    "snapshot_times",
    "spawn_rngs",
    "sphere",
    "step_from_tau",
    "support_of",
    "teacher_recovery",
    "trajectory_diagnostics",
]
