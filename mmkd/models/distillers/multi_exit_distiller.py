from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.logging import MessageHub
from mmengine.model import BaseModel, ModuleList
from torch import Tensor, nn

from mmkd.registry import MODELS
from ..heads import ExitHead
from ..losses import (dmfl_loss, feature_hint_loss, kd_kl_div_loss, one_hot_probs,
                      soft_target_ce_loss)
from ..utils import FiniteLossMixin, PSKDMemory
from ..utils.settings_check import BYOT_ALPHA, PSKD_ALPHA, check_settings

ExitOutputs = List[Tuple[Tensor, Tensor, Tensor]]  # per exit: logits, pooled feat, feat map


@MODELS.register_module()
class MultiExitDistiller(FiniteLossMixin, BaseModel):
    """Multi-exit self-distillation: PS-KD, BYOT and DMFL, each switchable (paper A).

    A backbone cut into N stages gets a classifier exit after each stage (``ExitHead``; exits
    are numbered 1..N, exit N is the ordinary classifier). With ``ŷ`` the PS-KD soft target
    (one-hot when ``pskd`` is None), ``z_i`` / ``F_i`` the logits / pooled feature of exit i:

    * always: ``w_N · CE(ŷ, z_N)`` with ``w_N = byot.final_ce_weight`` (1.9 = 1 + (1 − α), the
      reference assembly) when BYOT is on, else 1;
    * ``byot``, for each exit i in ``byot.exits``: ``(1 − α)·CE(ŷ, z_i)
      + α·τ²·KL(sg softmax(z_N/τ) ‖ softmax(z_i/τ)) + λ·Σ(F_i − sg F_N)²``;
    * ``dmfl``, for each exit i < N: ``w/(N − 1) · [KL(sg P_N ‖ P_i) + KL(sg P_i ‖ P_N)]``,
      ``P = softmax(F/τ_f)`` over channels, with gradient (see ``dmfl_loss``).

    Loss keys are ``exit{i}.loss_cls``, ``exit{i}.loss_kd``, ``exit{i}.loss_hint``,
    ``exit{i}.loss_dmfl``; ``pskd_alpha`` is logged. ``predict`` returns the softmax of every
    exit and of the ensemble (mean of the exits' softmax) for ``MultiModelClsMetric``.

    Args:
        backbone (dict): Config of a backbone returning N stage maps and exposing
            ``out_channels`` (e.g. ``CIFARResNet``); stages after the first halve the size.
        num_classes (int): Number of classes.
        exit_branch (str): ``ExitHead`` branch of exits 1..N−1: ``'bottleneck'`` (paper A
            ResNet-18/50) or ``'attention_sepconv'`` (ResNeXt-50). Defaults to 'bottleneck'.
        pskd (dict, optional): ``alpha_t`` (α_T, default 0.8) and ``memory_dtype`` ('float32'
            or 'float16'). None disables PS-KD.
        byot (dict, optional): ``exits`` (1-based exits < N that get BYOT losses, default all),
            ``alpha`` (0.1), ``temperature`` (3.0), ``hint_weight`` (λ, 1e-6),
            ``hint_reduction`` ('sum'), ``final_ce_weight`` (1.9). None disables BYOT.
        dmfl (dict, optional): ``weight`` (1.0), ``temperature`` (1.0), ``mode`` ('channel' or
            'spatial'), ``detach_target`` (True), ``legacy_no_grad`` (False). None disables DMFL.
        data_preprocessor (dict, optional): Defaults to None.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 backbone: dict,
                 num_classes: int,
                 exit_branch: str = 'bottleneck',
                 pskd: Optional[dict] = None,
                 byot: Optional[dict] = None,
                 dmfl: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        channels = list(self.backbone.out_channels)
        self.num_exits = n = len(channels)
        self.num_classes = num_classes
        self.exits = ModuleList(  # mmengine's: init_weights walks into it
            ExitHead(in_channels=c, feat_channels=channels[-1], stride=2**(n - 1 - i),
                     num_classes=num_classes, branch=exit_branch if i < n - 1 else 'none')
            for i, c in enumerate(channels))
        self.pskd = self._options('pskd', pskd, dict(alpha_t=0.8, memory_dtype='float32'))
        self.byot = self._options('byot', byot, dict(
            exits=tuple(range(1, n)), alpha=0.1, temperature=3.0, hint_weight=1e-6,
            hint_reduction='sum', final_ce_weight=1.9))
        self.dmfl = self._options('dmfl', dmfl, dict(
            weight=1.0, temperature=1.0, mode='channel', detach_target=True,
            legacy_no_grad=False))
        if self.byot is not None:
            bad = [i for i in self.byot['exits'] if not 1 <= i < n]
            if bad:
                raise ValueError(f'model.byot.exits must name exits 1..{n - 1} (exit {n} is '
                                 f'the teacher), got {list(self.byot["exits"])}')
        check_settings('model.pskd', self.pskd, fractions=dict(alpha_t=PSKD_ALPHA))
        check_settings('model.byot', self.byot, ['temperature'],
                       ['hint_weight', 'final_ce_weight'], dict(alpha=BYOT_ALPHA))
        check_settings('model.dmfl', self.dmfl, ['temperature'], ['weight'])
        if self.pskd is not None:
            self.pskd_memory = PSKDMemory(num_classes, self.pskd['memory_dtype'])

    @staticmethod
    def _options(key: str, given: Optional[dict], defaults: dict) -> Optional[dict]:
        if given is None:
            return None
        unknown = set(given) - set(defaults)
        if unknown:
            raise ValueError(f'model.{key} has unknown keys {sorted(unknown)}; '
                             f'allowed: {sorted(defaults)}')
        return {**defaults, **given}

    def forward(self, inputs: Tensor, data_samples: Optional[dict] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return [logits for logits, _, _ in self.extract_exits(inputs)]
        raise RuntimeError(f'Invalid mode "{mode}": use "loss", "predict" or "tensor"')

    def extract_exits(self, inputs: Tensor) -> ExitOutputs:
        return [head(x) for head, x in zip(self.exits, self.backbone(inputs))]

    def loss(self, inputs: Tensor, data_samples: dict) -> Dict[str, Tensor]:
        labels, sample_idx = data_samples['gt_label'], data_samples['sample_idx']
        outs = self.extract_exits(inputs)
        final_logits, final_feat, final_map = outs[-1]
        losses = {}
        if self.pskd is None:
            target = one_hot_probs(labels, self.num_classes)
        else:
            epoch, alpha = self.pskd_schedule()
            # No previous prediction exists in epoch 0: the target is exactly one-hot.
            target = self.pskd_memory.targets(labels, sample_idx, alpha if epoch else 0.0)
            # Written after the targets of this batch were read, from the same forward pass.
            self.pskd_memory.update(sample_idx, final_logits.detach().softmax(1))
            losses['pskd_alpha'] = final_logits.new_tensor(alpha)
        final_w = self.byot['final_ce_weight'] if self.byot else 1.0
        loss_final = final_w * soft_target_ce_loss(final_logits, target)
        trained = set()
        if self.byot is not None:
            trained.update(self.byot['exits'])
            losses.update(self._byot_losses(outs, target))
        if self.dmfl is not None:
            losses.update(self._dmfl_losses(outs, final_map))
        # Exits without a loss on their logits still take part in the graph with weight 0, so
        # that DDP sees every parameter used (no find_unused_parameters needed).
        idle = [outs[i - 1][0].sum() for i in range(1, self.num_exits) if i not in trained]
        losses[f'exit{self.num_exits}.loss_cls'] = loss_final + 0 * sum(idle)
        return losses

    def _byot_losses(self, outs: ExitOutputs, target: Tensor) -> Dict[str, Tensor]:
        cfg, losses = self.byot, {}
        final_logits, final_feat, _ = outs[-1]
        for i in cfg['exits']:
            logits, feat, _ = outs[i - 1]
            losses[f'exit{i}.loss_cls'] = (1 - cfg['alpha']) * soft_target_ce_loss(logits, target)
            losses[f'exit{i}.loss_kd'] = cfg['alpha'] * kd_kl_div_loss(
                logits, final_logits, cfg['temperature'])
            losses[f'exit{i}.loss_hint'] = cfg['hint_weight'] * feature_hint_loss(
                feat, final_feat, cfg['hint_reduction'])
        return losses

    def _dmfl_losses(self, outs: ExitOutputs, final_map: Tensor) -> Dict[str, Tensor]:
        cfg, n = self.dmfl, self.num_exits
        return {
            f'exit{i}.loss_dmfl': cfg['weight'] / (n - 1) * dmfl_loss(
                outs[i - 1][2], final_map, cfg['temperature'], cfg['mode'],
                cfg['detach_target'], cfg['legacy_no_grad'])
            for i in range(1, n)
        }

    def pskd_schedule(self) -> Tuple[int, float]:
        """The runner's 0-based epoch e and α_e = α_T·(e + 1)/E (E = max_epochs)."""
        hub = MessageHub.get_current_instance()
        epoch, max_epochs = hub.get_info('epoch'), hub.get_info('max_epochs')
        if epoch is None or max_epochs is None:
            raise RuntimeError('PS-KD needs the epoch and max_epochs of an epoch-based train '
                               'loop (mmengine RuntimeInfoHook puts them in the MessageHub)')
        return epoch, max(self.pskd['alpha_t'] * (epoch + 1) / max_epochs, 0.0)

    @torch.no_grad()
    def predict(self, inputs: Tensor, data_samples: dict) -> List[dict]:
        probs = {f'exit{i + 1}': logits.softmax(1)
                 for i, (logits, _, _) in enumerate(self.extract_exits(inputs))}
        probs['ensemble'] = torch.stack(list(probs.values())).mean(0)
        return [dict(sample_idx=data_samples['sample_idx'], gt_label=data_samples['gt_label'],
                     probs=probs)]
