# One command each, on a fresh clone: set up .venv (reused when present), then run.
PY := .venv/bin/python
DEMO_CFG ?= configs/self_distill/pskd-byot-dmfl_r18_1xb128-300e_cifar100.py
DEMO_DIR ?= work_dirs/demo

.PHONY: env demo test bench

env:
	bash tools/setup_env.sh

# Main job on the bundled sample: train 3 epochs, then print per-exit and ensemble metrics.
demo: env
	$(PY) tools/train.py $(DEMO_CFG) --data-root data/cifar100_sample --work-dir $(DEMO_DIR) \
		--cfg-options train_cfg.max_epochs=3 default_hooks.logger.interval=4
	$(PY) tools/test.py $(DEMO_CFG) $(DEMO_DIR)/epoch_3.pth --data-root data/cifar100_sample \
		--work-dir $(DEMO_DIR)

test: env
	$(PY) -m pytest tests -q -p no:cacheprovider

bench: env
	$(PY) tools/benchmark.py
