"""Named, pure loss functions (docs/losses.md), registered for configs in `LOSSES`.

Every module of this package is imported here, so a loss registered anywhere in it is known to configs,
to `vlkd ls losses` and to the registry-wide test without editing this file.
"""

import importlib
import pkgutil

from vlkd.losses.contrastive import ntxent
from vlkd.losses.crd import CRDLoss
from vlkd.losses.dualvgr import dualvgr_consistency, feature_kl, hsic
from vlkd.losses.hidden import hidden_cos, hidden_mse
from vlkd.losses.kd import nst, nst_gram, pack_upper, soft_kl, teacher_gram, unpack_upper
from vlkd.losses.matching import infonce, paired_hinge
from vlkd.losses.mlm import mlm
from vlkd.losses.mmd import mmd_rbf
from vlkd.losses.pkt import pkt
from vlkd.losses.registry import KINDS, LOSSES, LossEntry, get_loss, register_loss
from vlkd.losses.terms import LossTerm, LossTerms, check_terms
from vlkd.losses.voken import assign_vokens, voken

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "KINDS", "LOSSES", "LossEntry", "LossTerm", "LossTerms", "check_terms", "get_loss", "register_loss",
    "mlm", "paired_hinge", "infonce", "nst", "soft_kl", "dualvgr_consistency", "hsic", "feature_kl",
    "nst_gram", "teacher_gram", "pack_upper", "unpack_upper", "hidden_mse", "hidden_cos", "voken", "assign_vokens",
    "mmd_rbf", "ntxent", "pkt", "CRDLoss",
]
