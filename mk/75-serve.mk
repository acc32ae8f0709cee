# `jaclip serve` (tools/jaclip/serve/, docs/serve.md): the HTTP service on GNU libmicrohttpd and
# jansson, thumbnails encoded with libjpeg-turbo's TurboJPEG API. Three layers, each with its header:
# http*.c (+ web.c; serve.c wires them) -> routes*.c -> engine*.c (docs/architecture.md). The page's files
# (tools/jaclip/serve/web/) are embedded by web.c's .incbin, so the command is rebuilt when they change.
#   test-serve   test/serve: every endpoint against the Python binding, hostile HTTP input, graceful
#                stop, and the page in headless Chromium (screenshots: build/serve-page/*.png)
#   bench-serve  bench/bench_serve.py (not in make test): 1, 4, 16 concurrent clients on loopback
#   bench-immich bench/bench_immich.py (not in make test): images/s through Immich's /predict, 1 and 4
#                clients, against in-process encoding (docs/immich.md)
SERVE_LIBS := $(shell pkg-config --libs libmicrohttpd jansson libturbojpeg 2>/dev/null || echo -lmicrohttpd -ljansson -lturbojpeg)
CLI_LDLIBS += $(SERVE_LIBS) -lpthread
SERVE_SRCS := $(sort $(wildcard tools/jaclip/serve/*.c))
SERVE_WEB := $(wildcard tools/jaclip/serve/web/*)
CLI_SRCS += $(SERVE_SRCS)
$(CLI) $(CLI_INSTALLED): $(SERVE_SRCS) $(wildcard tools/jaclip/serve/*.h) $(SERVE_WEB)

.PHONY: test-serve bench-serve bench-immich
test-serve: lib test-models $(CLI)
	$(TEST_ENV) JACLIP_CLI=$(abspath $(CLI)) JACLIP_SCREENSHOTS=$(abspath $(BUILD))/serve-page \
		PYTHONPATH=bindings/python $(PYTHON) -m pytest -q -rs -p no:cacheprovider test/serve

TEST_STEPS += test-serve

# The full-size fp32 model of mk/50-bench.mk (BENCH_SERVE_MODEL=FILE to use another) and a 100k-row
# index of generated vectors (the server waits up to 300 s for a model slot, so that 16 clients
# queue instead of getting 503s); BENCH_SERVE_ARGS passes options (e.g. --threads 2).
BENCH_SERVE_MODEL ?= $(FULL_MODEL)
BENCH_SERVE_ARGS ?=
bench-serve: lib $(CLI) $(BENCH_SERVE_MODEL)
	$(TEST_ENV) JACLIP_CLI=$(abspath $(CLI)) PYTHONPATH=bindings/python \
		$(PYTHON) bench/bench_serve.py --model $(BENCH_SERVE_MODEL) --out $(BUILD)/bench-serve.json $(BENCH_SERVE_ARGS)

# Immich's Smart Search job: one image per /predict request (BENCH_SERVE_MODEL=build/models/tiny.jaclip
# for a quick run).
bench-immich: lib $(CLI) $(BENCH_SERVE_MODEL)
	$(TEST_ENV) JACLIP_CLI=$(abspath $(CLI)) PYTHONPATH=bindings/python \
		$(PYTHON) bench/bench_immich.py --model $(BENCH_SERVE_MODEL) --out $(BUILD)/bench-immich.json
