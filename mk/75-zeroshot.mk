# Zero-shot classification (issue 14): lib/classifier.c with the presets generated from
# data/zeroshot/imagenet_zeroshot_data.py, `jaclip eval`, the CLIP family. Its tests run in test-c
# (test/c/test_classifier.c) and test-python (test/python/test_zeroshot.py); test-zeroshot-presets
# checks the committed lib/zeroshot_presets.inc against the data file; bench-classifier times the
# 1000 x 37 ImageNet classifier on the full-size model (make bench only).

$(BUILD)/obj/classifier.o: lib/zeroshot_presets.inc

.PHONY: test-zeroshot-presets
test-zeroshot-presets:
	$(PYTHON) tools/jaclip-gen-presets data/zeroshot/imagenet_zeroshot_data.py - | cmp - lib/zeroshot_presets.inc

TEST_STEPS += test-zeroshot-presets
