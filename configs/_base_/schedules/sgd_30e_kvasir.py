# Paper B's optimiser (SGD, lr 0.01, momentum 0.9, batch 16, L2 weight decay). Epochs, decay
# value and the short linear warm-up (which keeps randomly initialised detection heads from
# diverging in the first iterations) are our choice: the paper does not give them.
# One optimiser wrapper per model of a distiller (PerModelOptimWrapperConstructor): teacher and
# each student clip their own gradients, so one model's large gradient never shrinks another
# model's step (a single model gets one wrapper, as with mmengine's default constructor).
optim_wrapper = dict(
    constructor='PerModelOptimWrapperConstructor',
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=100)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=30, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=16)
