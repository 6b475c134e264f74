# One optimiser per model of a distiller (its own clip_grad, lr and weight decay; a single
# model gets one, as with mmengine's default constructor).
# Paper B: SGD, lr 0.01, momentum 0.9, batch 16, L2 regularisation (weight decay). The paper
# gives neither the decay value nor the epoch count: 5e-4 and 30 epochs at a constant lr are
# our choice.
optim_wrapper = dict(
    constructor='PerModelOptimWrapperConstructor',
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4))
param_scheduler = []
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=30, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=16)
