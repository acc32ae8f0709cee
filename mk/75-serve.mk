# `jaclip serve` (tools/jaclip/serve*.c, docs/serve.md): the HTTP service on GNU libmicrohttpd and
# jansson, thumbnails encoded with libjpeg-turbo's TurboJPEG API. The page's files (tools/jaclip/web/)
# are embedded into the command by serve_web.c's .incbin, so the command is rebuilt when they change.
#   test-serve   test/serve: every endpoint against the Python binding, hostile HTTP input, graceful
#                stop, and the page in headless Chromium (screenshot: build/serve-page.png)
#   bench-serve  bench/bench_serve.py (not in make test): 1, 4, 16 concurrent clients on loopback
SERVE_LIBS := $(shell pkg-config --libs libmicrohttpd jansson libturbojpeg 2>/dev/null || echo -lmicrohttpd -ljansson -lturbojpeg)
CLI_LDLIBS += $(SERVE_LIBS) -lpthread
SERVE_WEB := $(wildcard tools/jaclip/web/*)
$(CLI) $(CLI_INSTALLED): $(SERVE_WEB)

.PHONY: test-serve bench-serve
test-serve: lib test-models $(CLI)
	$(TEST_ENV) JACLIP_CLI=$(abspath $(CLI)) JACLIP_SCREENSHOT=$(abspath $(BUILD))/serve-page.png \
		PYTHONPATH=bindings/python $(PYTHON) -m pytest -q -rs -p no:cacheprovider test/serve

TEST_STEPS += test-serve

# The full-size fp32 model and a 100k-row index of generated vectors (BENCH_SERVE_MODEL to override).
BENCH_SERVE_MODEL ?= $(firstword $(wildcard /work/main/build/bench/full.jaclip $(BUILD)/bench/full.jaclip) $(TINY_MODEL))
bench-serve: lib $(CLI) $(TINY_MODEL)
	$(TEST_ENV) JACLIP_CLI=$(abspath $(CLI)) PYTHONPATH=bindings/python \
		$(PYTHON) bench/bench_serve.py --model $(BENCH_SERVE_MODEL) --out $(BUILD)/bench-serve.json
