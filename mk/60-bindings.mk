# Bindings and consumers: include/jaclip.hpp, bindings/python, bindings/ruby, examples/ (examples/classify.c
# is the demo's, in the Makefile). test/python/test_binding_python.py and test/python/test_consumers.py run
# in test-python; these steps add:
#   test-ruby      the minitest suite of bindings/ruby/test
#   test-examples  builds examples/search.c and examples/classify.cpp and runs every example once on
#                  the tiny model (the output format is asserted by test_consumers.py)
EXAMPLE_BINS := $(BUILD)/examples/search $(BUILD)/examples/classify_cpp
EXAMPLE_IMAGES := $(BUILD)/examples/images

.PHONY: examples test-ruby test-examples
examples: $(EXAMPLE_BINS)

$(BUILD)/examples/search: examples/search.c include/jaclip.h $(SHLIB)
	@mkdir -p $(BUILD)/examples
	$(CC) -std=c99 -D_DEFAULT_SOURCE -O2 -Wall -Wextra -Iinclude -o $@ $< -L$(BUILD) -ljaclip \
		-Wl,-rpath,$(abspath $(BUILD))

$(BUILD)/examples/classify_cpp: examples/classify.cpp include/jaclip.hpp include/jaclip.h $(SHLIB)
	@mkdir -p $(BUILD)/examples
	$(CXX) -std=c++17 -O2 -Wall -Wextra -Iinclude -o $@ $< -L$(BUILD) -ljaclip -Wl,-rpath,$(abspath $(BUILD))

RUBY_TEST_RUN := Dir.glob("bindings/ruby/test/*_test.rb").sort.each { |f| require File.expand_path(f) }

test-ruby: lib test-models $(BUILD)/jaclip
	$(TEST_ENV) $(RUBY) -Ibindings/ruby/lib -Ibindings/ruby/test -e '$(RUBY_TEST_RUN)'

# A folder of three images for search: the demo photo and two generated PNGs.
$(EXAMPLE_IMAGES)/.done: data/dog.jpeg
	mkdir -p $(EXAMPLE_IMAGES)
	cp data/dog.jpeg $(EXAMPLE_IMAGES)/dog.jpeg
	$(PYTHON) -c 'from PIL import Image; Image.new("RGB", (320, 240), (200, 40, 30)).save("$(EXAMPLE_IMAGES)/red.png"); Image.linear_gradient("L").save("$(EXAMPLE_IMAGES)/gradient.png")'
	touch $@

test-examples: lib test-models $(EXAMPLE_BINS) $(EXAMPLE_IMAGES)/.done
	$(TEST_ENV) $(BUILD)/examples/search $(TINY_MODEL) $(EXAMPLE_IMAGES) 犬の写真 3
	$(TEST_ENV) $(BUILD)/examples/classify_cpp $(TINY_MODEL) data/dog.jpeg 犬 猫 象 --template '{}の写真'
	$(TEST_ENV) PYTHONPATH=bindings/python $(PYTHON) examples/classify.py $(TINY_MODEL) data/dog.jpeg 犬 猫 象 --template '{}の写真'
	$(TEST_ENV) $(RUBY) -Ibindings/ruby/lib examples/classify.rb $(TINY_MODEL) data/dog.jpeg 犬 猫 象 --template '{}の写真'

TEST_STEPS += test-ruby test-examples

# ---- install: the bindings where the system's Python 3 and Ruby look ---------------------------------
# /usr: Debian's folders (python3-jaclip, ruby-jaclip); /usr/local: the site folders Debian's python3
# and ruby search; another prefix: these folders, named in PYTHONPATH / RUBYLIB (README, Install).
PYTHON_XY = $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PYTHON_SITEDIR ?= $(if $(filter /usr,$(PREFIX)),/usr/lib/python3/dist-packages,$(PREFIX)/lib/python$(PYTHON_XY)/$(if $(filter /usr/local,$(PREFIX)),dist-packages,site-packages))
RUBY_LIBDIR ?= $(if $(filter /usr,$(PREFIX)),/usr/lib/ruby/vendor_ruby,$(if $(filter /usr/local,$(PREFIX)),/usr/local/lib/site_ruby,$(PREFIX)/lib/ruby/site_ruby))
INSTALL_EXTRA += install -d $(DESTDIR)$(PYTHON_SITEDIR)/jaclip $(DESTDIR)$(RUBY_LIBDIR)/jaclip && \
	install -m 644 bindings/python/jaclip/*.py $(DESTDIR)$(PYTHON_SITEDIR)/jaclip/ && \
	install -m 644 bindings/ruby/lib/jaclip.rb $(DESTDIR)$(RUBY_LIBDIR)/jaclip.rb && \
	install -m 644 bindings/ruby/lib/jaclip/*.rb $(DESTDIR)$(RUBY_LIBDIR)/jaclip/;

.PHONY: uninstall-bindings print-install-dirs
uninstall: uninstall-bindings
uninstall-bindings:
	rm -rf $(DESTDIR)$(PYTHON_SITEDIR)/jaclip $(DESTDIR)$(RUBY_LIBDIR)/jaclip
	rm -f $(DESTDIR)$(RUBY_LIBDIR)/jaclip.rb
print-install-dirs:
	@echo "LIBDIR=$(LIBDIR) PYTHON_SITEDIR=$(PYTHON_SITEDIR) RUBY_LIBDIR=$(RUBY_LIBDIR)"
