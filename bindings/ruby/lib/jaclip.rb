# Ruby binding of libjaclip (rinna's Japanese CLOOB: image and text embeddings, zero-shot
# classification, an embedding index) over the ffi gem. Results are Arrays of Floats.
#
#   require "jaclip"
#   Jaclip::Model.open("model.jaclip") do |model|
#     model.classify("dog.jpeg", %w[犬 猫 象], template: "{}の写真").each { |p| puts "#{p.probability} #{p.label}" }
#   end
require_relative "jaclip/version"
require_relative "jaclip/errors"
require_relative "jaclip/native"
require_relative "jaclip/tensor"
require_relative "jaclip/handle"
require_relative "jaclip/api"
require_relative "jaclip/index"
require_relative "jaclip/ann"
require_relative "jaclip/sync"
require_relative "jaclip/classifier"

Jaclip.check_version
