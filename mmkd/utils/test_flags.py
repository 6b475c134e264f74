"""mmdet's ``tools/test.py`` flags for mmkd's: ``--out``, ``--show``, ``--show-dir``,
``--wait-time``, ``--tta``, and a progress bar."""
import argparse
import copy
import os
import os.path as osp

from mmengine.config import Config, ConfigDict

_DEFAULT_TTA = dict(type='MultiModelDetTTAModel',
                    tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))


def add_test_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of mmdet's tools/test.py that mmkd's takes too, with mmdet's names."""
    parser.add_argument('--out', help='dump every model\'s predictions to this pickle '
                        '(.pkl): pred_instances and, per model, model_preds')
    parser.add_argument('--show', action='store_true', help='detection: show each picture '
                        '(ground truth, every model\'s top box, the ensemble) in a window')
    parser.add_argument('--show-dir', help='detection: save a picture per image with the '
                        'ground truth, each model\'s top box and the ensemble\'s box here')
    parser.add_argument('--show-max', type=int, default=0,
                        help='with --show / --show-dir: at most this many pictures (0: all)')
    parser.add_argument('--wait-time', type=float, default=2,
                        help='with --show: seconds each picture stays (0: until a key)')
    parser.add_argument('--tta', action='store_true', help='detection: test-time '
                        'augmentation (flip); every model\'s boxes are flipped back and merged')


def tta_config(cfg: Config) -> None:
    """mmdet's ``--tta`` on ``cfg``: the model wrapped in ``cfg.tta_model`` (default: mmkd's
    ``MultiModelDetTTAModel``, flip and NMS; mmdet's ``DetTTAModel`` in a config becomes it,
    so every model is merged), the test pipeline replaced by ``cfg.tta_pipeline`` (default:
    the test pipeline with its last step replaced by a flip / no-flip ``TestTimeAug``, as
    mmdet's tools/test.py builds it)."""
    tta_model = copy.deepcopy(cfg.get('tta_model') or _DEFAULT_TTA)
    if str(tta_model['type']).split('.')[-1] == 'DetTTAModel':
        tta_model['type'] = 'MultiModelDetTTAModel'
    if 'tta_pipeline' not in cfg:
        dataset = cfg.test_dataloader.dataset
        while 'dataset' in dataset:
            dataset = dataset['dataset']
        pipeline = copy.deepcopy(dataset.get('pipeline') or [])
        if not pipeline or not str(pipeline[-1]['type']).endswith('PackDetInputs'):
            raise ValueError('--tta is test-time augmentation for detection: the test '
                             'pipeline must end in PackDetInputs (or the config must have a '
                             'tta_pipeline)')
        pack = dict(pipeline[-1])
        pack['meta_keys'] = tuple(pack.get('meta_keys', (
            'img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))) + (
                'flip', 'flip_direction')
        pipeline[-1] = dict(type='TestTimeAug', transforms=[
            [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)], [pack]])
        cfg.tta_pipeline = pipeline
    cfg.model = ConfigDict(**tta_model, module=cfg.model)
    dataset = cfg.test_dataloader.dataset
    while 'dataset' in dataset:
        dataset = dataset['dataset']
    dataset.pipeline = cfg.tta_pipeline


def check_writable(path: str, what: str) -> None:
    """Create (then remove) ``path`` to prove it can be written, before the evaluation that
    would fail to write it at its very end, with no metrics printed.

    Raises:
        OSError: Naming the option and the path.
    """
    existed = osp.exists(path)
    try:
        if osp.dirname(path):
            os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'ab'):
            pass
    except OSError as e:
        raise OSError(f'{what} {path} cannot be written ({e.strerror or e}): nothing was '
                      'evaluated. Pick a writable path.') from e
    if not existed:
        os.remove(path)


def _test_dataset(cfg: Config) -> dict:
    dataset = cfg.test_dataloader.dataset
    while 'dataset' in dataset:
        dataset = dataset['dataset']
    return dataset


def check_show_dir(cfg: Config, option: str) -> None:
    """``--show`` / ``--show-dir`` draw boxes: refuse a test set that is not a detection set
    (its pipeline does not end in ``PackDetInputs``) before the evaluation, which would end
    in an ``AttributeError`` at the first picture.

    Raises:
        ValueError: Naming the option and the model type.
    """
    pipeline = _test_dataset(cfg).get('pipeline') or []
    if pipeline and str(pipeline[-1].get('type')).endswith('PackDetInputs'):
        return
    raise ValueError(f'{option} draws each model\'s detection boxes, but this config\'s test '
                     f'set is not a detection set (model.type = {cfg.model.get("type")!r}; its '
                     'test pipeline does not end in PackDetInputs). Leave out '
                     f'{option}; for a classifier, tools/plot_figures.py draws the accuracy and '
                     'reliability figures.')


def _saved_predictions(cfg: Config):
    evaluator = cfg.get('test_evaluator')
    for metric in evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]:
        if isinstance(metric, dict) and metric.get('save_predictions'):
            yield metric['save_predictions']


def apply_test_flags(cfg: Config, args: argparse.Namespace) -> None:
    """Apply :func:`add_test_arguments`' options to ``cfg``, and add the progress bar. Every
    output path is checked to be writable, and ``--show`` / ``--show-dir`` to meet a detection
    test set, before anything is evaluated."""
    hooks = list(cfg.get('custom_hooks', []))
    for path in _saved_predictions(cfg):
        check_writable(path, 'test_evaluator.save_predictions')
    if args.show or args.show_dir:
        check_show_dir(cfg, '--show-dir' if args.show_dir else '--show')
        hooks.append(dict(type='mmkd.DetComparisonHook', out_dir=args.show_dir,
                          max_images=args.show_max, show=args.show,
                          wait_time=args.wait_time))
    cfg.custom_hooks = hooks + [dict(type='mmkd.ProgressBarHook')]
    if args.out:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out {args.out}: the predictions are a pickle, name it .pkl')
        check_writable(args.out, '--out')
        evaluator = cfg.test_evaluator
        evaluator = list(evaluator) if isinstance(evaluator, (list, tuple)) else [evaluator]
        cfg.test_evaluator = evaluator + [
            dict(type='mmkd.DumpModelPredictions', out_file_path=args.out)]
    if args.tta:
        tta_config(cfg)
