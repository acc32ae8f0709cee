# Hostile input, round two (issue 13; docs/reliability.md). test/c/test_bounds.c joins test-c (through
# the wildcard of mk/10-core.mk); it generates its inputs with zlib and libjpeg, so it links them, and
# runs every case in a child under RLIMIT_AS and a timeout.
$(BUILD)/test/test_bounds: test/c/test_bounds.c test/c/check.h include/jaclip.h $(SHLIB) | $(BUILD)/test/.dir
	$(CC) -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Iinclude -o $@ $< -L$(BUILD) -ljaclip \
		-Wl,-rpath,$(abspath $(BUILD)) -ljpeg -lz -lm -lpthread
