# Index files, format version 2 (lib/index/): test/index/test_index_files.c (deletion, tombstones,
# compaction, stamps, fingerprint, float16 rows, version 1 files, and the issue-13 classes) run under
# a 4 GB address-space limit and a 120 s timeout, so a regression fails instead of swapping or hanging.
INDEX_FILES_TEST := $(BUILD)/test/test_index_files

$(INDEX_FILES_TEST): test/index/test_index_files.c test/c/check.h include/jaclip.h $(SHLIB) | $(BUILD)/test/.dir
	$(CC) -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Iinclude -o $@ $< -L$(BUILD) -ljaclip \
		-Wl,-rpath,$(abspath $(BUILD)) -lm -lpthread

.PHONY: test-index-files
test-index-files: lib $(INDEX_FILES_TEST)
	$(TEST_ENV) prlimit --as=4294967296 timeout 120 $(INDEX_FILES_TEST)

TEST_STEPS += test-index-files

# Index metadata, format version 3 (issue 25): test/index/test_index_meta.c, same limits.
INDEX_META_TEST := $(BUILD)/test/test_index_meta

$(INDEX_META_TEST): test/index/test_index_meta.c test/c/check.h include/jaclip.h $(SHLIB) | $(BUILD)/test/.dir
	$(CC) -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Iinclude -Itest/c -o $@ $< -L$(BUILD) -ljaclip \
		-Wl,-rpath,$(abspath $(BUILD)) -lz -lm -lpthread

.PHONY: test-index-meta
test-index-meta: lib $(INDEX_META_TEST)
	$(TEST_ENV) prlimit --as=4294967296 timeout 120 $(INDEX_META_TEST)

TEST_STEPS += test-index-meta

# Filter-then-rank search options against brute force (issue 25): test/index/test_index_filter.c.
INDEX_FILTER_TEST := $(BUILD)/test/test_index_filter

$(INDEX_FILTER_TEST): test/index/test_index_filter.c test/c/check.h include/jaclip.h $(SHLIB) | $(BUILD)/test/.dir
	$(CC) -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Iinclude -Itest/c -o $@ $< -L$(BUILD) -ljaclip \
		-Wl,-rpath,$(abspath $(BUILD)) -lm -lpthread

.PHONY: test-index-filter
test-index-filter: lib $(INDEX_FILTER_TEST)
	$(TEST_ENV) prlimit --as=4294967296 timeout 120 $(INDEX_FILTER_TEST)

TEST_STEPS += test-index-filter

# jaclip index sync hashes file contents with OpenSSL's SHA-256.
CLI_LDLIBS += -lcrypto

# Filter-then-rank against the plain exact search, 100 000 and 1 000 000 rows (about 5 GB at 1 M).
# Not part of make test.
.PHONY: bench-filters
bench-filters: lib
	JACLIP_LIBRARY=$(abspath $(SHLIB)) $(PYTHON) bench/bench_filters.py --rows 100000 --queries 20
	JACLIP_LIBRARY=$(abspath $(SHLIB)) $(PYTHON) bench/bench_filters.py --rows 1000000 --queries 5

# float32 against float16 rows on clustered 512-d vectors, 100 000 and 1 000 000 rows (about 7 GB of
# memory at 1 M). Not part of make test.
.PHONY: bench-index-storage
bench-index-storage: lib
	$(PYTHON) bench/bench_index.py --storage --rows 100000 --queries 50
	$(PYTHON) bench/bench_index.py --storage --rows 1000000 --queries 20

# Capture times (issue 25): EXIF DateTimeOriginal, hostile EXIF, per-row times in format version 4:
# test/index/test_index_times.c, same limits.
INDEX_TIMES_TEST := $(BUILD)/test/test_index_times

$(INDEX_TIMES_TEST): test/index/test_index_times.c test/c/check.h include/jaclip.h $(SHLIB) | $(BUILD)/test/.dir
	$(CC) -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Iinclude -Itest/c -o $@ $< -L$(BUILD) -ljaclip \
		-Wl,-rpath,$(abspath $(BUILD)) -lz -lm -lpthread

.PHONY: test-index-times
test-index-times: lib $(INDEX_TIMES_TEST)
	$(TEST_ENV) prlimit --as=4294967296 timeout 120 $(INDEX_TIMES_TEST)

TEST_STEPS += test-index-times
