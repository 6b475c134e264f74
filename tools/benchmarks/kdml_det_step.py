"""Teacher + 2 students KD+ML detection step over the sum of the 3 plain steps, and the cost
of one optimiser per model over one optimiser for all three."""
from .common import kdml_det, plain_steps, ratio_row, side_by_side, summed, train_step_fn

NAME = 'kdml_det_step'


def run(args):
    model, data = kdml_det(args)
    contenders = {'kdml': train_step_fn(model, data),
                  'kdml_one_optim': train_step_fn(model, data, 'DefaultOptimWrapperConstructor'),
                  **plain_steps(model, data)}
    times = side_by_side(contenders, args.reps)
    return [ratio_row('KD+ML step, one optimiser per model / one optimiser for all (det, V3 '
                      'GFL)', times['kdml'], times['kdml_one_optim'], 1.02),
            ratio_row('KD+ML step / sum of 3 plain steps (det, V3 GFL)', times['kdml'],
                      summed(times, model.model_names), 1.10,
                      f'batch {args.det_batch_size}, {args.det_img_size}px, '
                      'DenseNet-201 -> EfficientNet-B0 + B1')]
