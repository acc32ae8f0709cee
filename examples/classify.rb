#!/usr/bin/env ruby
# Zero-shot classification with the Ruby binding.
#
#   classify.rb MODEL IMAGE LABEL... [--template T]... [--scale S]
#   e.g. classify.rb model.jaclip dog.jpeg 犬 猫 象 --template '{}の写真'
#
# Output: one line per label, best first: "PROBABILITY<TAB>LABEL", the probability as %.9g (the same
# format as classify.cpp and classify.py).
require "jaclip"

labels = []
templates = []
scale = 100.0
args = ARGV.dup
model_path, image = args.shift(2)
until args.empty?
  arg = args.shift
  case arg
  when "--template" then templates << args.shift
  when "--scale" then scale = Float(args.shift)
  else labels << arg
  end
end
if image.nil? || labels.empty?
  warn "usage: classify.rb MODEL IMAGE LABEL... [--template T]... [--scale S]"
  exit 2
end

begin
  Jaclip::Model.open(model_path) do |model|
    model.classify(image, labels, template: templates.empty? ? nil : templates, scale: scale).each do |p|
      puts format("%.9g\t%s", p.probability, p.label)
    end
  end
rescue Jaclip::Error => e
  warn "classify: #{e.message} (#{Jaclip.status_string(e.status)})"
  exit 1
end
