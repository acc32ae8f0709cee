# Approximate search (lib/ann.c, built into libjaclip by the lib/*.c rule) and its faiss plugin
# libjaclip-faiss.so.1 (lib/faiss_bridge.cpp, the only file that includes faiss). Debian's libfaiss-dev
# ships a static libfaiss.a only: the plugin links it whole with its BLAS (libblas.so.3, OpenBLAS via
# Debian's alternatives) and OpenMP, so libjaclip.so needs none of them.
# Tests: test/c/test_ann.c (test-c), test/python/test_ann.py (test-python), test-fuzz-ann (a bounded
# libFuzzer run over ANN files, ANN_FUZZ_SECONDS). make bench-ann: bench/bench_ann.c at 100 k and 1 M.
FAISS_PLUGIN := $(BUILD)/libjaclip-faiss.so.1
FAISS_STATIC ?= /usr/lib/x86_64-linux-gnu/libfaiss.a
FAISS_LDLIBS := $(FAISS_STATIC) -fopenmp -lblas -llapack -lm -lpthread

lib: $(FAISS_PLUGIN)

$(BUILD)/obj/faiss_bridge.o: lib/faiss_bridge.cpp lib/faiss_bridge.h lib/internal.h include/jaclip.h | $(BUILD)/obj
	$(CXX) $(CXXFLAGS_LIB) -fopenmp -c $< -o $@

$(FAISS_PLUGIN): $(BUILD)/obj/faiss_bridge.o
	$(CXX) -shared -Wl,-soname,libjaclip-faiss.so.1 -Wl,--no-undefined -Wl,-Bsymbolic -o $@ $< $(FAISS_LDLIBS)

# Where the static library looks for the plugin (the shared one looks beside itself first).
$(BUILD)/obj/faiss_plugin.o: CFLAGS_LIB += -DJACLIP_PLUGIN_DIR='"$(LIBDIR)"'
$(BUILD)/obj/faiss_plugin.o: $(PREFIX_STAMP)

INSTALL_EXTRA += install -m 755 $(FAISS_PLUGIN) $(DESTDIR)$(LIBDIR)/libjaclip-faiss.so.1;
.PHONY: uninstall-ann
uninstall: uninstall-ann
uninstall-ann:
	rm -f $(DESTDIR)$(LIBDIR)/libjaclip-faiss.so.1

# Not in make test: speed is measured here only. BENCH_ANN_ROWS sizes; output also in build/bench/ann.md.
BENCH_ANN_ROWS ?= 100000 1000000
$(BUILD)/bench/bench_ann: bench/bench_ann.c include/jaclip.h $(SHLIB)
	@mkdir -p $(BUILD)/bench
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Iinclude -o $@ $< -L$(BUILD) -ljaclip \
		-Wl,-rpath,$(abspath $(BUILD)) -lm

.PHONY: bench-ann
# OMP_WAIT_POLICY=PASSIVE: on a shared, oversubscribed machine spinning OpenMP workers steal the cores
# they wait for (a 20 k-row IVF-PQ build measured 49 s passive against 233 s spinning here).
bench-ann: lib $(BUILD)/bench/bench_ann
	OMP_WAIT_POLICY=PASSIVE $(BUILD)/bench/bench_ann $(BENCH_ANN_ROWS) | tee $(BUILD)/bench/ann.md
