from .box_kd_loss import box_distance, box_kd_loss
from .cwd_loss import cwd_loss
from .dmfl_loss import dmfl_loss
from .feature_hint_loss import feature_hint_loss
from .kd_kl_div_loss import kd_kl_div_loss, reverse_kd_kl_div_loss
from .ld_kd_loss import ld_kd_loss
from .pkd_loss import pkd_loss, standardize_channels
from .sigmoid_kd_loss import sigmoid_kd_loss
from .soft_target_ce_loss import one_hot_probs, soft_target_ce_loss

__all__ = [
    'box_distance', 'box_kd_loss', 'cwd_loss', 'dmfl_loss', 'feature_hint_loss', 'kd_kl_div_loss', 'ld_kd_loss',
    'one_hot_probs', 'pkd_loss', 'reverse_kd_kl_div_loss', 'sigmoid_kd_loss',
    'soft_target_ce_loss', 'standardize_channels'
]
