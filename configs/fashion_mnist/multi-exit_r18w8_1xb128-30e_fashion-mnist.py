_base_ = ['./multi-exit_r18w8_1xb128-5e_fashion-mnist.py']
# The same network and 6,000-image subset as the 5-epoch config, trained 6x longer so that
# PS-KD can act: its soft target at epoch t is epoch t-1's own prediction weighted
# alpha_T * t / T, useless while those predictions are poor (the 5-epoch runs). 30 epochs =
# 1,410 iterations (paper A: 300 epochs, ~117k); paper A's step schedule scaled (x0.1 at 1/2 and
# 3/4 of the epochs, rounded up: epochs 15 and 23), so the last quarter runs at lr 1e-3 and the
# baseline's test error is flat there (per-epoch curves: docs/results_self_distill.md).
# Validation (all 10,000 test images, ~8 s on one 2-core-machine core, ~60 % of a training
# epoch) every 2nd epoch keeps a run at ~9 min; the curves have 15 points.
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[15, 23], gamma=0.1)]
train_cfg = dict(max_epochs=30, val_interval=2)
