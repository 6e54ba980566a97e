r"""Teacher recovery: how well a student's effective neurons match a teacher's.

For ReLU the feature is 2-homogeneous, so a particle θᵢ = (aᵢ, wᵢ, bᵢ) acts only through
its effective neuron cᵢ = aᵢ(wᵢ, bᵢ), and the network depends on μ only through the two
measures on S^d, split by the sign of a,

.. math:: \nu^\pm_\mu = \sum_{\pm a_i > 0} p_i \|c_i\|\, \delta_{\pm c_i/\|c_i\|},
   \qquad f_\mu(x) = \textstyle\int \sigma(\omega\cdot\tilde x)\,d\nu^+_\mu(\omega)
            - \int \sigma(\omega\cdot\tilde x)\,d\nu^-_\mu(\omega),

with x̃ = (x, 1).  :func:`effective_neuron_mmd` compares them with the teacher's by an
MMD, and :func:`teacher_recovery` assigns the student's particles to the teacher's
neurons and reports mass and angle per teacher neuron.  Both are invariant to splitting
particles and to the ReLU rescaling (λa, (w, b)/λ), λ > 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from meanfield._validation import check_positive, describe
from meanfield.measure import ParticleMeasure

__all__ = ["TeacherRecovery", "effective_neuron_mmd", "teacher_recovery"]

Array = NDArray[np.floating]


def _check_measures(student: object, teacher: object) -> None:
    for name, mu in (("student", student), ("teacher", teacher)):
        if not isinstance(mu, ParticleMeasure):
            raise TypeError(f"{name} must be a ParticleMeasure; got {describe(mu)}")


def _effective(measure: ParticleMeasure) -> tuple[Array, Array, Array]:
    """Sign of a, unit hidden direction û and effective mass pᵢ|aᵢ|‖uᵢ‖ of each particle."""
    u = measure.theta[..., 1:]
    norm = np.linalg.norm(u, axis=-1)
    direction = u / np.where(norm > 0, norm, 1.0)[..., None]
    return np.sign(measure.a), direction, measure.masses * np.abs(measure.a) * norm


@dataclass(frozen=True)
class TeacherRecovery:
    r"""Result of :func:`teacher_recovery` (arrays over the teacher's neurons j, last axis).

    Attributes
    ----------
    teacher_mass : ndarray, shape (..., m₀)
        qⱼ‖c⋆ⱼ‖, the teacher neuron's effective mass.
    student_mass : ndarray, shape (..., m₀)
        Σ pᵢ‖cᵢ‖ over the student particles of the same sign of a whose nearest teacher
        direction is j.
    mass_ratio : ndarray, shape (..., m₀)
        student_mass / teacher_mass (1 at perfect recovery).
    angle : ndarray, shape (..., m₀)
        Angle (radians) between the mass-weighted mean direction of those particles and the
        teacher's direction (NaN when no particle is assigned).
    mass_within : ndarray, shape (..., m₀)
        Part of student_mass within ``angle_tol`` of the teacher's direction.
    particle_fraction : ndarray, shape (..., m₀)
        Σ pᵢ over the assigned particles (the share of the width).
    unmatched_mass : ndarray, shape (...)
        Student effective mass with a sign of a that no teacher neuron has.
    mmd : ndarray, shape (...)
        :func:`effective_neuron_mmd` between student and teacher.
    """

    teacher_mass: Array
    student_mass: Array
    mass_ratio: Array
    angle: Array
    mass_within: Array
    particle_fraction: Array
    unmatched_mass: Array
    mmd: Array


def _sphere_kernel(x: Array, y: Array, kappa: float) -> Array:
    return np.exp(kappa * (x @ np.swapaxes(y, -1, -2) - 1.0))


def effective_neuron_mmd(
    student: ParticleMeasure, teacher: ParticleMeasure, *, kappa: float = 10.0
) -> Array:
    r"""MMD between the sign-split effective-neuron measures of two ReLU networks.

    .. math::
        \mathrm{MMD}^2 = \sum_{s=\pm} \|\nu^s_\mu - \nu^s_{\nu}\|^2_{k},\qquad
        k(\omega, \omega') = e^{\kappa(\omega\cdot\omega' - 1)}

    with ν^±_μ = Σ_{±aᵢ>0} pᵢ‖cᵢ‖ δ_{(wᵢ,bᵢ)/‖(wᵢ,bᵢ)‖} (unnormalised: mass mismatches
    count).  It is 0 iff the measures coincide (k is universal on S^d), invariant to
    splitting a particle and to the ReLU rescaling (λa, (w, b)/λ), λ > 0.

    Returns
    -------
    ndarray, shape: the broadcast batch shape
    """
    _check_measures(student, teacher)
    if student.d != teacher.d:
        raise ValueError(f"student has d={student.d} but teacher has d={teacher.d}")
    kappa = check_positive("kappa", kappa)
    ss, us, es = _effective(student)
    st, ut, et = _effective(teacher)
    total = 0.0
    for sign in (1.0, -1.0):
        e1, e2 = es * (ss == sign), et * (st == sign)
        total = total + (
            np.einsum("...i,...ij,...j->...", e1, _sphere_kernel(us, us, kappa), e1)
            + np.einsum("...i,...ij,...j->...", e2, _sphere_kernel(ut, ut, kappa), e2)
            - 2 * np.einsum("...i,...ij,...j->...", e1, _sphere_kernel(us, ut, kappa), e2)
        )
    return np.sqrt(np.maximum(total, 0.0))


def teacher_recovery(
    student: ParticleMeasure,
    teacher: ParticleMeasure,
    *,
    angle_tol: float = 0.1,
    kappa: float = 10.0,
) -> TeacherRecovery:
    r"""How well the student's effective neurons recover each teacher neuron (ReLU).

    Each student particle (aᵢ, uᵢ) is assigned to the teacher neuron j of the same sign of
    a whose direction û⋆ⱼ is nearest to ûᵢ = uᵢ/‖uᵢ‖; then, per teacher neuron,

    .. math::
        M_j = \sum_{i\to j} p_i\|c_i\|, \qquad
        \angle_j = \angle\Big(\sum_{i\to j} p_i\|c_i\|\,\hat u_i,\ \hat u^\star_j\Big).

    Exact recovery (M_j = q_j‖c⋆_j‖, ∠_j = 0, MMD = 0) holds for the teacher itself and is
    invariant to splitting particles and to ReLU rescalings.

    Parameters
    ----------
    student, teacher : ParticleMeasure
        Batch shapes broadcast.
    angle_tol : float, default 0.1
        Radius (radians) for :attr:`TeacherRecovery.mass_within`.
    kappa : float, default 10.0
        Concentration of the MMD kernel.

    Returns
    -------
    TeacherRecovery
    """
    mmd = effective_neuron_mmd(student, teacher, kappa=kappa)
    angle_tol = check_positive("angle_tol", angle_tol)
    ss, us, es = _effective(student)
    st, ut, et = _effective(teacher)
    cos = np.clip(us @ np.swapaxes(ut, -1, -2), -1.0, 1.0)  # (..., m, m0)
    same = (ss[..., :, None] == st[..., None, :]) & (ss[..., :, None] != 0)
    ang = np.where(same, np.arccos(cos), np.inf)
    best = np.argmin(ang, axis=-1)
    matched = np.take_along_axis(ang, best[..., None], axis=-1)[..., 0] < np.inf
    onehot = (np.arange(ut.shape[-2]) == best[..., None]) & matched[..., None]
    w = es[..., :, None] * onehot
    mass = np.sum(w, axis=-2)
    mean_dir = np.einsum("...ij,...id->...jd", w, us)
    norm = np.linalg.norm(mean_dir, axis=-1)
    cos_j = np.sum(mean_dir * ut, axis=-1) / np.where(norm > 0, norm, 1.0)
    angle = np.where(norm > 0, np.arccos(np.clip(cos_j, -1.0, 1.0)), np.nan)
    within = np.sum(w * (ang <= angle_tol), axis=-2)
    frac = np.sum(student.masses[..., :, None] * onehot, axis=-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(et > 0, mass / np.where(et > 0, et, 1.0), np.nan)
    unmatched = np.sum(es * ~matched, axis=-1)
    return TeacherRecovery(
        np.broadcast_to(et, mass.shape).copy(), mass, ratio, angle, within, frac, unmatched, mmd
    )
