# One command each, on a fresh clone: set up .venv (reused when present), then run.
PY := .venv/bin/python
DEMO_CFG ?= configs/self_distill/pskd-byot-dmfl_r18_1xb128-300e_cifar100.py
DEMO_DIR ?= work_dirs/demo

.PHONY: env demo test bench

env:
	bash tools/setup_env.sh

# Main job on the bundled sample: train 3 epochs at batch 32 (lr scaled linearly from the
# recipe's 0.1 at batch 128 by --auto-scale-lr), then print per-exit and ensemble metrics.
demo: env
	$(PY) tools/train.py $(DEMO_CFG) --data-root data/cifar100_sample --work-dir $(DEMO_DIR) \
		--auto-scale-lr --cfg-options train_cfg.max_epochs=3 train_dataloader.batch_size=32 \
		default_hooks.logger.interval=8
	$(PY) tools/test.py $(DEMO_CFG) $(DEMO_DIR)/epoch_3.pth --data-root data/cifar100_sample \
		--work-dir $(DEMO_DIR)

test: env
	$(PY) -m pytest tests -q -p no:cacheprovider

bench: env
	$(PY) tools/benchmark.py
