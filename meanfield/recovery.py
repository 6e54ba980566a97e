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
from typing import Any

import numpy as np
from numpy.typing import NDArray

from meanfield._validation import check_positive, describe
from meanfield.covering import _polar_rows
from meanfield.measure import ParticleMeasure

__all__ = ["TeacherRecovery", "effective_neuron_mmd", "teacher_recovery"]

Array = NDArray[np.floating]


def _check_measures(student: Any, teacher: Any) -> None:
    for name, mu in (("student", student), ("teacher", teacher)):
        if not isinstance(mu, ParticleMeasure):
            raise TypeError(f"{name} must be a ParticleMeasure; got {describe(mu)}")
    if student.d != teacher.d:
        raise ValueError(f"student has d={student.d} but teacher has d={teacher.d}")


def _effective(measure: ParticleMeasure) -> tuple[Array, Array, Array]:
    """Sign of a, unit direction û of u = (w, b) and log pᵢ|aᵢ|‖uᵢ‖ (−inf when 0) per particle.

    In logs, so that no effective mass overflows or underflows before it is compared.
    """
    th = measure.theta.astype(np.float64)
    scale, length, unit = _polar_rows(th[..., 1:])
    with np.errstate(divide="ignore"):
        log_e = np.log(measure.masses) + np.log(np.abs(th[..., 0]))
        log_e = log_e + np.log(scale) + np.log(length)
    return np.sign(th[..., 0]), unit, log_e


def _exp_checked(log_value: Array, name: str, what: str) -> Array:
    """exp(log_value) or a ValueError naming ``name`` when it exceeds the float64 range."""
    with np.errstate(over="ignore"):
        value = np.exp(log_value)
    if not np.all(np.isfinite(value)):
        raise ValueError(
            f"{what} overflows float64 (up to 10^{np.max(log_value) / np.log(10):.1f}): "
            f"rescale {name}"
        )
    return value


def _log(x: Array) -> Array:
    with np.errstate(divide="ignore"):
        return np.log(x)


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
        student_mass / teacher_mass (1 at perfect recovery), computed in logs.  A teacher
        neuron of zero effective mass (qⱼ = 0, aⱼ = 0 or (wⱼ, bⱼ) = 0) is not in the
        support of ν^±: it takes no particle and its ratio is defined as 1 (nothing to
        recover), never NaN or inf.
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
    cos = np.clip(x @ np.swapaxes(y, -1, -2), -1.0, 1.0)  # rounding past 1 would overflow
    with np.errstate(over="ignore"):  # κ(cos − 1) ≤ 0: −inf gives the correct 0
        return np.exp(kappa * (cos - 1.0))


def _scaled(
    student: ParticleMeasure, teacher: ParticleMeasure
) -> tuple[tuple[Array, Array, Array], tuple[Array, Array, Array], Array]:
    """Sign, direction and log effective mass − L of both measures, L the largest log-mass.

    exp of the shifted log-masses lies in [0, 1]; L (shape: the broadcast batch shape, 0
    when both measures have zero mass) carries the magnitude.
    """
    ss, us, log_es = _effective(student)
    st, ut, log_et = _effective(teacher)
    top = np.maximum(np.max(log_es, axis=-1), np.max(log_et, axis=-1))
    top = np.where(np.isfinite(top), top, 0.0)
    return (ss, us, log_es - top[..., None]), (st, ut, log_et - top[..., None]), top


def effective_neuron_mmd(
    student: ParticleMeasure, teacher: ParticleMeasure, *, kappa: float = 10.0
) -> Array:
    r"""MMD between the sign-split effective-neuron measures of two ReLU networks.

    .. math::
        \mathrm{MMD}^2 = \sum_{s=\pm} \|\nu^s_\mu - \nu^s_{\nu}\|^2_{k},\qquad
        k(\omega, \omega') = e^{\kappa(\omega\cdot\omega' - 1)}

    with ν^±_μ = Σ_{±aᵢ>0} pᵢ‖cᵢ‖ δ_{(wᵢ,bᵢ)/‖(wᵢ,bᵢ)‖} (unnormalised: mass mismatches
    count).  It is 0 iff the measures coincide (k is universal on S^d), invariant to
    splitting a particle and to the ReLU rescaling (λa, (w, b)/λ), λ > 0.  The effective
    masses are handled in logs and the directions rescaled, so positions near 1e±300 and
    any finite κ give the correctly rounded value.

    Parameters
    ----------
    student, teacher : ParticleMeasure
        Same d; batch shapes broadcast.
    kappa : float, default 10.0
        Concentration κ > 0 of the kernel (finite).

    Returns
    -------
    ndarray, shape: the broadcast batch shape

    Raises
    ------
    TypeError, ValueError
        Naming the invalid argument; ``ValueError`` naming ``student`` and ``teacher``
        when the MMD itself exceeds the float64 range.
    """
    _check_measures(student, teacher)
    kappa = check_positive("kappa", kappa)
    (ss, us, log_es), (st, ut, log_et), top = _scaled(student, teacher)
    es, et = np.exp(log_es), np.exp(log_et)
    total = np.zeros_like(top)
    for sign in (1.0, -1.0):
        e1, e2 = es * (ss == sign), et * (st == sign)
        total = total + (
            np.einsum("...i,...ij,...j->...", e1, _sphere_kernel(us, us, kappa), e1)
            + np.einsum("...i,...ij,...j->...", e2, _sphere_kernel(ut, ut, kappa), e2)
            - 2 * np.einsum("...i,...ij,...j->...", e1, _sphere_kernel(us, ut, kappa), e2)
        )
    return _exp_checked(
        top + 0.5 * _log(np.maximum(total, 0.0)), "student or teacher", "the effective-neuron MMD"
    )


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
    invariant to splitting particles and to ReLU rescalings.  Teacher neurons of zero
    effective mass are left out of the assignment (ratio 1, see :class:`TeacherRecovery`).
    Masses are compared in logs, so positions near 1e±300 give correctly rounded values.

    Parameters
    ----------
    student, teacher : ParticleMeasure
        Same d; batch shapes broadcast.
    angle_tol : float, default 0.1
        Radius (radians) for :attr:`TeacherRecovery.mass_within`.
    kappa : float, default 10.0
        Concentration of the MMD kernel.

    Returns
    -------
    TeacherRecovery

    Raises
    ------
    TypeError, ValueError
        Naming the invalid argument; ``ValueError`` naming ``student`` or ``teacher`` when
        a reported mass or ratio exceeds the float64 range (e.g. a teacher neuron 1e-300
        times lighter than the student particles assigned to it).
    """
    angle_tol = check_positive("angle_tol", angle_tol)
    mmd = effective_neuron_mmd(student, teacher, kappa=kappa)
    (ss, us, log_es), (st, ut, log_et), top = _scaled(student, teacher)
    es = np.exp(log_es)
    present = np.isfinite(log_et)  # zero effective mass: not in supp ν^±, takes no particle
    cos = np.clip(us @ np.swapaxes(ut, -1, -2), -1.0, 1.0)  # (..., m, m0)
    same = (ss[..., :, None] == st[..., None, :]) & (ss[..., :, None] != 0) & present[..., None, :]
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
    log_ratio = np.where(present, _log(mass) - np.where(present, log_et, 0.0), 0.0)
    lift = top[..., None]
    teacher_mass = _exp_checked(lift + log_et, "teacher", "teacher_mass")
    return TeacherRecovery(
        teacher_mass=np.broadcast_to(teacher_mass, mass.shape).copy(),
        student_mass=_exp_checked(lift + _log(mass), "student", "student_mass"),
        mass_ratio=_exp_checked(log_ratio, "teacher", "mass_ratio"),
        angle=angle,
        mass_within=_exp_checked(
            lift + _log(np.sum(w * (ang <= angle_tol), axis=-2)), "student", "mass_within"
        ),
        particle_fraction=np.sum(student.masses[..., :, None] * onehot, axis=-2),
        unmatched_mass=_exp_checked(
            top + _log(np.sum(es * ~matched, axis=-1)), "student", "unmatched_mass"
        ),
        mmd=mmd,
    )
