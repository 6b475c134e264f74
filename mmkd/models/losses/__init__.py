from .dmfl_loss import dmfl_loss
from .feature_hint_loss import feature_hint_loss
from .kd_kl_div_loss import kd_kl_div_loss, reverse_kd_kl_div_loss
from .soft_target_ce_loss import one_hot_probs, soft_target_ce_loss

__all__ = [
    'dmfl_loss', 'feature_hint_loss', 'kd_kl_div_loss', 'one_hot_probs',
    'reverse_kd_kl_div_loss',
    'soft_target_ce_loss'
]
