"""One validation loop over teacher + students + ensemble vs the three models evaluated
one after another (each its own pass over the data, as separate runs would)."""
from mmengine.evaluator import Evaluator
from mmengine.runner import Runner

from .common import kdml_cls, ratio_row, side_by_side

NAME = 'kdml_cls_val'


def run(args):
    cfg, model = kdml_cls(args)
    model.eval()
    loader = Runner.build_dataloader(cfg.val_dataloader)

    def evaluate(net):
        evaluator = Evaluator(dict(type='MultiModelClsMetric', topk=(1, )))
        for batch in loader:
            evaluator.process(net.val_step(batch), batch)
        return evaluator.evaluate(len(loader.dataset))

    def separately():
        for net in [model.teacher, *model.students]:
            net.data_preprocessor = model.data_preprocessor
            evaluate(net)

    times = side_by_side({'joint': lambda: evaluate(model), 'separate': separately},
                         max(2, args.reps // 2))
    return [ratio_row('3-model val loop / 3 models one after another', times['joint'],
                      times['separate'], 1.0, f'{len(loader.dataset)} tiles, '
                      f'{args.kdml_img_size}px')]
