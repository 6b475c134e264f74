# The distillation schedule of online KD + ML: the KD and ML weights (β, γ) ramp in linearly
# over the first 6 epochs (a fifth of the 30-epoch recipes; DistillScheduleHook logs the factor
# as distill_factor). While the online teacher and the peers are still random, their
# predictions would pull every student toward noise. Offline configs (a trained teacher)
# set custom_hooks = [] to distil at full weight from the first iteration.
custom_hooks = [dict(type='DistillScheduleHook', ramp='linear', begin=0, end=6, by_epoch=True)]
