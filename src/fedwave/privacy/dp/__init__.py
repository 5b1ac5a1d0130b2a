"""Differential privacy with accounting: DP-FedAvg (client level) and DP-SGD (sample level).

* :mod:`~fedwave.privacy.dp.config` - the ``dp`` config section and its cross-section checks.
* :mod:`~fedwave.privacy.dp.mechanisms` - clip, Gaussian noise, distributed shares, delivered noise,
  the fixed denominator q N (pure functions).
* :mod:`~fedwave.privacy.dp.dpsgd` - one DP-SGD step: Poisson batch, per-example gradients, clip, noise.
* :mod:`~fedwave.privacy.dp.accountant` - accountants by name (``rdp``, ``prv``, ``pld``).
* :mod:`~fedwave.privacy.dp.calibrate` - planned epsilons and the z that reaches a target epsilon.
* :mod:`~fedwave.privacy.dp.plan` / :mod:`~fedwave.privacy.dp.describe` - ``fedwave privacy``.
* :mod:`~fedwave.privacy.dp.ledger` - a run's accountants, fed with the noise actually delivered.
"""

from fedwave.privacy.dp.accountant import Accountant, accountant_names, make_accountant
from fedwave.privacy.dp.calibrate import Schedule, calibrate_noise_multiplier, planned_epsilons
from fedwave.privacy.dp.config import DPConfig, check_dp_run, check_dp_training
from fedwave.privacy.dp.dpsgd import (
    check_dpsgd_model,
    clip_per_example,
    dp_sgd_gradient,
    noisy_gradient,
    per_example_gradients,
    poisson_batch,
)
from fedwave.privacy.dp.ledger import PrivacyLedger
from fedwave.privacy.dp.mechanisms import (
    add_gaussian_noise,
    central_noise_std,
    clip_update,
    delivered_noise_std,
    distributed_share_std,
    effective_noise_multiplier,
    fixed_denominator,
    fixed_denominator_mean,
    gaussian_noise,
    global_l2_norm,
)
from fedwave.privacy.dp.plan import (
    PrivacyPlan,
    client_sample_rate,
    local_schedule,
    plan_privacy,
    resolved_dp_config,
)

__all__ = [
    "Accountant",
    "DPConfig",
    "PrivacyLedger",
    "PrivacyPlan",
    "Schedule",
    "accountant_names",
    "add_gaussian_noise",
    "calibrate_noise_multiplier",
    "central_noise_std",
    "check_dp_run",
    "check_dp_training",
    "check_dpsgd_model",
    "client_sample_rate",
    "clip_per_example",
    "clip_update",
    "delivered_noise_std",
    "distributed_share_std",
    "dp_sgd_gradient",
    "effective_noise_multiplier",
    "fixed_denominator",
    "fixed_denominator_mean",
    "gaussian_noise",
    "global_l2_norm",
    "local_schedule",
    "make_accountant",
    "noisy_gradient",
    "per_example_gradients",
    "plan_privacy",
    "planned_epsilons",
    "poisson_batch",
    "resolved_dp_config",
]
