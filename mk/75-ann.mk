# Approximate search (lib/ann/) and its faiss plugin libjaclip-faiss.so.1 (lib/backend/faiss/), both
# built by mk/lib.mk. Tests: test/c/test_ann.c (test-c), test/python/test_ann.py (test-python),
# test-fuzz-ann (mk/85-fuzz-ann.mk).
# make bench-ann: bench/bench_ann.c at 100 k and 1 M.
INSTALL_EXTRA += install -m 644 $(FAISS_PLUGIN) $(DESTDIR)$(LIBDIR)/libjaclip-faiss.so.1;
.PHONY: uninstall-ann
uninstall: uninstall-ann
uninstall-ann:
	rm -f $(DESTDIR)$(LIBDIR)/libjaclip-faiss.so.1

# Not in make test: speed is measured here only. BENCH_ANN_ROWS sizes; output also in build/bench/ann.md.
BENCH_ANN_ROWS ?= 100000 1000000
$(BUILD)/bench/bench_ann: bench/bench_ann.c bench/bench_synth.h include/jaclip.h $(SHLIB)
	@mkdir -p $(BUILD)/bench
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Iinclude -o $@ $< -L$(BUILD) -ljaclip \
		-Wl,-rpath,$(abspath $(BUILD)) -lm

.PHONY: bench-ann
# OMP_WAIT_POLICY=PASSIVE: on a shared, oversubscribed machine spinning OpenMP workers steal the cores
# they wait for (a 20 k-row IVF-PQ build measured 49 s passive against 233 s spinning here).
bench-ann: lib $(BUILD)/bench/bench_ann
	OMP_WAIT_POLICY=PASSIVE $(BUILD)/bench/bench_ann $(BENCH_ANN_ROWS) | tee $(BUILD)/bench/ann.md

# make bench-dupes: bench/bench_dupes.c (jaclip_index_duplicates) at 100 k and 1 M rows; not in make
# test. BENCH_DUPES_ROWS sizes; output also in build/bench/dupes.md.
BENCH_DUPES_ROWS ?= 100000 1000000
$(BUILD)/bench/bench_dupes: bench/bench_dupes.c bench/bench_synth.h include/jaclip.h $(SHLIB)
	@mkdir -p $(BUILD)/bench
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Iinclude -o $@ $< -L$(BUILD) -ljaclip \
		-Wl,-rpath,$(abspath $(BUILD)) -lm

.PHONY: bench-dupes
bench-dupes: lib $(BUILD)/bench/bench_dupes
	$(BUILD)/bench/bench_dupes $(BENCH_DUPES_ROWS) | tee $(BUILD)/bench/dupes.md
