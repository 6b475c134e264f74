# PS-KD / paper A: Nesterov SGD, lr 0.1, momentum 0.9, weight decay 5e-4 (on every parameter,
# BN included), batch 128, 300 epochs, lr x0.1 at epochs 150 and 225.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, milestones=[150, 225], gamma=0.1)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=300, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=128)
