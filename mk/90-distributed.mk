# Scale-out on Dask (bindings/python/jaclip/distributed.py, docs/distributed.md). Its tests
# (test/python/test_distributed.py, test/c/test_index_merge.c) run in test-python and test-c; nothing is
# added to TEST_STEPS. `make bench-distributed` (not part of make test) measures images/s with 1 and
# 2 workers against `jaclip index build` on the full-size model: BENCH_DIST_IMAGES photos, default 32.
BENCH_DIST_IMAGES ?= 32
BENCH_DIST_MODEL ?= $(FULL_MODEL)

.PHONY: bench-distributed
bench-distributed: lib $(CLI) $(BENCH_DIST_MODEL)
	$(TEST_ENV) $(PYTHON) bench/bench_distributed.py --model $(BENCH_DIST_MODEL) --images $(BENCH_DIST_IMAGES) \
		--cli $(CLI)
