"""Named, pure loss functions (DESIGN section 9), registered for configs in `LOSSES`."""

from vlkd.losses.dualvgr import dualvgr_consistency, feature_kl, hsic
from vlkd.losses.kd import nst, soft_kl
from vlkd.losses.matching import infonce, paired_hinge
from vlkd.losses.mlm import mask_tokens, mlm
from vlkd.losses.registry import LOSSES, get_loss, register_loss
from vlkd.losses.kd import nst_gram, pack_upper, teacher_gram, unpack_upper
from vlkd.losses.hidden import hidden_cos, hidden_mse
from vlkd.losses.voken import assign_vokens, voken
from vlkd.losses.mmd import mmd_rbf
from vlkd.losses.contrastive import ntxent
from vlkd.losses.crd import CRDLoss

__all__ = [
    "LOSSES", "get_loss", "register_loss", "mask_tokens", "mlm", "paired_hinge", "infonce", "nst", "soft_kl",
    "dualvgr_consistency", "hsic", "feature_kl",
    "nst_gram", "teacher_gram", "pack_upper", "unpack_upper", "hidden_mse", "hidden_cos", "voken", "assign_vokens",
    "mmd_rbf", "ntxent", "CRDLoss",
]
