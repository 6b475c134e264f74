"""Teacher + 2 students KD+ML step over the sum of the three models' plain steps."""
from .common import (cls_batch, kdml_cls, plain_steps, ratio_row, side_by_side, summed,
                     train_step_fn)

NAME = 'kdml_cls_step'


def run(args):
    _, model = kdml_cls(args)
    size = args.kdml_img_size
    data = cls_batch(16, size, num_classes=2)
    contenders = {'kdml': train_step_fn(model, data), **plain_steps(model, data)}
    times = side_by_side(contenders, args.reps)
    return [ratio_row('KD+ML step / sum of 3 plain steps (cls, V1)', times['kdml'],
                      summed(times, model.model_names), 1.05,
                      f'batch 16, {size}px, ResNet-152 -> 50 + 34')]
