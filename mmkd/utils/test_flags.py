"""mmdet's ``tools/test.py`` flags for mmkd's: ``--out``, ``--show``, ``--show-dir``,
``--wait-time``, ``--tta``, and a progress bar."""
import argparse
import copy

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


def apply_test_flags(cfg: Config, args: argparse.Namespace) -> None:
    """Apply :func:`add_test_arguments`' options to ``cfg``, and add the progress bar."""
    hooks = list(cfg.get('custom_hooks', []))
    if args.show or args.show_dir:
        hooks.append(dict(type='mmkd.DetComparisonHook', out_dir=args.show_dir,
                          max_images=args.show_max, show=args.show,
                          wait_time=args.wait_time))
    cfg.custom_hooks = hooks + [dict(type='mmkd.ProgressBarHook')]
    if args.out:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out {args.out}: the predictions are a pickle, name it .pkl')
        evaluator = cfg.test_evaluator
        evaluator = list(evaluator) if isinstance(evaluator, (list, tuple)) else [evaluator]
        cfg.test_evaluator = evaluator + [
            dict(type='mmkd.DumpModelPredictions', out_file_path=args.out)]
    if args.tta:
        tta_config(cfg)
