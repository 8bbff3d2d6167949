"""regnerf_tf.flows: the RealNVP patch prior of RegNeRF's appearance loss.

Public API:
  PatchFlow            RealNVP density over S×S×3 colour patches (Keras 3 model)
  CouplingNetwork      the shift / bounded log-scale MLP of one coupling
  AppearanceLoss       mean NLL (nats/dim) of rendered patches under a frozen prior
  appearance_loss      functional form of AppearanceLoss
  load_prior           load <stem>.json + <stem>.weights.h5 (frozen by default)
  load_default_prior   the shipped 8×8 prior
  save_prior           atomic save of a PatchFlow

Training: ``regnerf-train-prior`` (regnerf_tf.flows.train_prior); evaluation
against a diagonal Gaussian: ``python -m regnerf_tf.flows.evaluate_prior``.
"""

from regnerf_tf.flows.prior import AppearanceLoss
from regnerf_tf.flows.prior import DEFAULT_PRIOR_STEM
from regnerf_tf.flows.prior import appearance_loss
from regnerf_tf.flows.prior import load_default_prior
from regnerf_tf.flows.prior import load_prior
from regnerf_tf.flows.prior import load_source
from regnerf_tf.flows.prior import save_prior
from regnerf_tf.flows.realnvp import CouplingNetwork
from regnerf_tf.flows.realnvp import PatchFlow

__all__ = [
    "AppearanceLoss",
    "CouplingNetwork",
    "DEFAULT_PRIOR_STEM",
    "PatchFlow",
    "appearance_loss",
    "load_default_prior",
    "load_prior",
    "load_source",
    "save_prior",
]
