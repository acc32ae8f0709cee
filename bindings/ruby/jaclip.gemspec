require_relative "lib/jaclip/version"

Gem::Specification.new do |s|
  s.name = "jaclip"
  s.version = Jaclip::VERSION
  s.summary = "Ruby binding of libjaclip: rinna's Japanese CLOOB image/text embeddings and zero-shot classification"
  s.description = "FFI binding of the libjaclip C library (installed separately; found through " \
                  "JACLIP_LIBRARY, pkg-config or the system library path)."
  s.authors = ["libjaclip authors"]
  s.license = "Apache-2.0"
  s.files = Dir["lib/**/*.rb"] + ["jaclip.gemspec"]
  s.require_paths = ["lib"]
  s.required_ruby_version = ">= 2.7"
  s.add_dependency "ffi", ">= 1.12"
  s.add_development_dependency "minitest", ">= 5"
end
