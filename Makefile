# One command each, on a fresh clone: set up .venv (reused when present), then run.
PY := .venv/bin/python

# Main job: paper B V3 (DenseNet-201 -> EfficientNet-B0 + B1 GFL detectors, online KD+ML) on
# the bundled Kvasir-SEG-format sample. The overrides only shrink the run for 2 CPU cores
# (3 epochs, batch 4, 192 px, a 10-iteration warm-up) and keep low-scoring boxes (score_thr
# 0.001 instead of mmdet's 0.05: three short epochs from scratch leave every score low, and the
# IoU metric scores the top box of each image); without them the config is the recipe for the
# real dataset.
KVASIR_CFG ?= configs/kvasir_kdml_v3.py
KVASIR_DIR ?= work_dirs/kvasir_demo
KVASIR_SAMPLE_OPTS := --data-root data/kvasir_sample --cfg-options \
	train_dataloader.batch_size=4 val_dataloader.batch_size=4 test_dataloader.batch_size=4 \
	train_dataloader.dataset.pipeline.2.scale="(192,192)" \
	val_dataloader.dataset.pipeline.1.scale="(192,192)" \
	test_dataloader.dataset.pipeline.1.scale="(192,192)" \
	model.teacher.test_cfg.score_thr=0.001 model.students.0.test_cfg.score_thr=0.001 \
	model.students.1.test_cfg.score_thr=0.001

# Self-distillation on the bundled CIFAR-100-format sample: 3 epochs at batch 32 (lr scaled
# linearly from the recipe's 0.1 at batch 128 by --auto-scale-lr).
CIFAR_CFG ?= configs/self_distill/pskd-byot-dmfl_r18_1xb128-300e_cifar100.py
CIFAR_DIR ?= work_dirs/cifar_demo

.PHONY: env demo demo-cifar test bench

env:
	bash tools/setup_env.sh

demo: env
	$(PY) tools/train.py $(KVASIR_CFG) --work-dir $(KVASIR_DIR) $(KVASIR_SAMPLE_OPTS) \
		train_cfg.max_epochs=3 param_scheduler.0.end=10 default_hooks.logger.interval=5 \
		randomness.seed=0
	$(PY) tools/test.py $(KVASIR_CFG) $(KVASIR_DIR)/epoch_3.pth --work-dir $(KVASIR_DIR) \
		--show-dir $(KVASIR_DIR)/pictures $(KVASIR_SAMPLE_OPTS)

demo-cifar: env
	$(PY) tools/train.py $(CIFAR_CFG) --data-root data/cifar100_sample --work-dir $(CIFAR_DIR) \
		--auto-scale-lr --cfg-options train_cfg.max_epochs=3 train_dataloader.batch_size=32 \
		default_hooks.logger.interval=8 randomness.seed=0
	$(PY) tools/test.py $(CIFAR_CFG) $(CIFAR_DIR)/epoch_3.pth --data-root data/cifar100_sample \
		--work-dir $(CIFAR_DIR)

test: env
	$(PY) -m pytest tests -q -p no:cacheprovider

bench: env
	$(PY) tools/benchmark.py
