import math
from typing import Dict, List, Optional, Sequence, Set, Tuple

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

    A backbone cut into S stages gets a classifier exit after each stage (``ExitHead``; exits
    are numbered 1..N with N = S, exit N is the ordinary classifier). With
    ``branch_on_last_stage`` the last stage gets a branch exit too, as in the reference's
    2- and 3-stage networks (paper A Table 4): exits 1..S are branches on stages 1..S and exit
    N = S + 1 is the classifier on stage S. With ``ŷ`` the PS-KD soft target (one-hot when
    ``pskd`` is None), ``z_i`` / ``F_i`` the logits / pooled feature of exit i:

    * always: ``w_N · CE(ŷ, z_N)`` with ``w_N = byot.final_ce_weight`` (1.9 = 1 + (1 − α), the
      reference assembly) when BYOT is on, else 1;
    * ``byot``, for each exit i in ``byot.exits`` (default: every exit < N): ``(1 − α)·CE(ŷ, z_i)
      + α·τ²·KL(sg softmax(z_N/τ) ‖ softmax(z_i/τ)) + λ·Σ(F_i − sg F_N)²``;
    * ``dmfl``, for each exit i < S (the first S − 1 exits, as the reference):
      ``w/(S − 1) · [KL(sg P_N ‖ P_i) + KL(sg P_i ‖ P_N)]``, ``P = softmax(F/τ_f)`` over
      channels, with gradient unless ``dmfl.legacy_no_grad`` (see ``dmfl_loss``).

    Loss keys are ``exit{i}.loss_cls``, ``exit{i}.loss_kd``, ``exit{i}.loss_hint``,
    ``exit{i}.loss_dmfl``; ``pskd_alpha`` is logged. ``predict`` returns the softmax of every
    exit and of the ensemble (mean of the exits' softmax), and their logarithms, for
    ``MultiModelClsMetric``.

    Args:
        backbone (dict): Config of a backbone returning N stage maps and exposing
            ``out_channels`` (e.g. ``CIFARResNet``); stages after the first halve the size.
        num_classes (int): Number of classes.
        exit_branch (str): ``ExitHead`` branch of exits 1..N−1: ``'bottleneck'`` (paper A
            ResNet-18/50) or ``'attention_sepconv'`` (ResNeXt-50). Defaults to 'bottleneck'.
        branch_on_last_stage (bool): Also put a branch exit on the last stage (exits 1..S on
            stages 1..S, the classifier on stage S is exit S + 1). Needs ``branch_strides``.
            Defaults to False (exits 1..S−1 on stages 1..S−1, exit S the classifier).
        branch_strides (Sequence[int], optional): Stride k of each branch exit, shallowest
            first (``ExitHead.stride``). Defaults to None: ``2**(S − s)`` for stage s, which
            brings every branch to the last stage's size; the reference's 2- and 3-stage
            networks keep their 4-stage branches, ``(8, 4)`` and ``(8, 4, 2)``.
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
                 branch_on_last_stage: bool = False,
                 branch_strides: Optional[Sequence[int]] = None,
                 pskd: Optional[dict] = None,
                 byot: Optional[dict] = None,
                 dmfl: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        channels = list(self.backbone.out_channels)
        self.num_stages = len(channels)
        self.branch_on_last_stage = branch_on_last_stage
        branch_in = channels if branch_on_last_stage else channels[:-1]
        strides = self._branch_strides(len(channels), branch_on_last_stage, branch_strides)
        self.num_exits = n = len(branch_in) + 1
        self.num_classes = num_classes
        heads = [ExitHead(in_channels=c, feat_channels=channels[-1], stride=k,
                          num_classes=num_classes, branch=exit_branch)
                 for c, k in zip(branch_in, strides)]
        heads.append(ExitHead(in_channels=channels[-1], feat_channels=channels[-1], stride=1,
                              num_classes=num_classes, branch='none'))
        self.exits = ModuleList(heads)  # mmengine's: init_weights walks into it
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
        size_changes = [k for s, k in enumerate(strides, 1) if k != 2**(self.num_stages - s)]
        if self.dmfl is not None and self.dmfl['mode'] == 'spatial' and size_changes:
            raise ValueError("model.dmfl.mode='spatial' compares un-pooled maps, so every "
                             'branch must reach the last stage\'s size (stride 2**(S - s) on '
                             f'stage s), got model.branch_strides {list(strides)}; use '
                             "model.dmfl.mode='channel'")
        check_settings('model.pskd', self.pskd, fractions=dict(alpha_t=PSKD_ALPHA))
        check_settings('model.byot', self.byot, ['temperature'],
                       ['hint_weight', 'final_ce_weight'], dict(alpha=BYOT_ALPHA))
        check_settings('model.dmfl', self.dmfl, ['temperature'], ['weight'])
        if self.pskd is not None:
            self.pskd_memory = PSKDMemory(num_classes, self.pskd['memory_dtype'])

    @staticmethod
    def _branch_strides(num_stages: int, on_last: bool,
                        given: Optional[Sequence[int]]) -> List[int]:
        """The stride of each branch exit, checked against the number of branches."""
        num_branches = num_stages if on_last else num_stages - 1
        if given is None:
            if on_last:
                raise ValueError(
                    'model.branch_on_last_stage=True needs model.branch_strides, one stride '
                    f'per stage ({num_stages}): the reference\'s 3- and 2-stage networks keep '
                    'the 4-stage branches, branch_strides=(8, 4, 2) and (8, 4)')
            return [2**(num_stages - 1 - i) for i in range(num_branches)]
        strides = [int(k) for k in given]
        if len(strides) != num_branches or any(k != g or k < 1 for k, g in zip(strides, given)):
            raise ValueError(
                f'model.branch_strides needs {num_branches} positive ints (one per branch '
                f'exit: {num_stages} stages, branch_on_last_stage={on_last}), got {list(given)}')
        return strides

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

    def extract_exits(self, inputs: Tensor, without_grad: Set[int] = frozenset()) -> ExitOutputs:
        """Logits, pooled feature and feature map of every exit; the 1-based exits in
        ``without_grad`` run under ``torch.no_grad()`` (values and BN statistics unchanged)."""
        maps = list(self.backbone(inputs))
        if self.branch_on_last_stage:  # the last stage feeds its branch and the classifier
            maps.append(maps[-1])
        outs = []
        for i, (head, x) in enumerate(zip(self.exits, maps), 1):
            with torch.set_grad_enabled(torch.is_grad_enabled() and i not in without_grad):
                outs.append(head(x))
        return outs

    def exits_without_gradient(self) -> Set[int]:
        """The exits < N no loss sends a gradient to: neither BYOT on their logits nor DMFL
        with gradient on their maps (the reference's gradient-free DMFL only reads them)."""
        trained = set(self.byot['exits']) if self.byot is not None else set()
        if self.dmfl is not None and not self.dmfl['legacy_no_grad']:
            trained.update(range(1, self.num_stages))
        return set(range(1, self.num_exits)) - trained

    def loss(self, inputs: Tensor, data_samples: dict) -> Dict[str, Tensor]:
        labels, sample_idx = data_samples['gt_label'], data_samples['sample_idx']
        # Exits without a gradient run forward only, as their values and BN statistics are
        # kept (backward through them would only compute zeros).
        frozen = self.exits_without_gradient()
        outs = self.extract_exits(inputs, frozen)
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
            losses['pskd_alpha'] = final_logits.new_full((), alpha)
        final_w = self.byot['final_ce_weight'] if self.byot else 1.0
        loss_final = final_w * soft_target_ce_loss(final_logits, target)
        trained = set()
        if self.byot is not None:
            trained.update(self.byot['exits'])
            losses.update(self._byot_losses(outs, target))
        if self.dmfl is not None:
            losses.update(self._dmfl_losses(outs, final_map))
        # Every parameter takes part in the graph, with weight 0 where no loss reaches it, so
        # that DDP sees each one used (no find_unused_parameters) and every gradient is 0
        # rather than None (weight decay and momentum act on them as on the others): the
        # logits of exits trained through DMFL only, the parameters of frozen exits.
        idle = [outs[i - 1][0].sum() for i in range(1, self.num_exits)
                if i not in trained and i not in frozen]
        idle += [p.sum() for i in sorted(frozen) for p in self.exits[i - 1].parameters()]
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
        # The reference pairs the first S − 1 exits with the classifier's feature (not a
        # branch on the last stage) and averages over those S − 1 pairs.
        cfg, s = self.dmfl, self.num_stages
        return {
            f'exit{i}.loss_dmfl': cfg['weight'] / (s - 1) * dmfl_loss(
                outs[i - 1][2], final_map, cfg['temperature'], cfg['mode'],
                cfg['detach_target'], cfg['legacy_no_grad'])
            for i in range(1, s)
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
        logits = [z for z, _, _ in self.extract_exits(inputs)]
        probs = {f'exit{i + 1}': z.softmax(1) for i, z in enumerate(logits)}
        probs['ensemble'] = torch.stack(list(probs.values())).mean(0)
        # log of the mean of the softmaxes, without underflow (the metric's NLL reads these)
        log_probs = {f'exit{i + 1}': z.log_softmax(1) for i, z in enumerate(logits)}
        log_probs['ensemble'] = (torch.stack(list(log_probs.values())).logsumexp(0)
                                 - math.log(len(logits)))
        return [dict(sample_idx=data_samples['sample_idx'], gt_label=data_samples['gt_label'],
                     probs=probs, log_probs=log_probs)]
