# features.rb MODEL IMAGE OUTDIR TEXT...: features.c through the Ruby binding. Floats are doubles in
# Ruby; float32 → double → float32 is exact, so pack("e*") gives back the library's bytes.
require "jaclip"

model_path, image, outdir, *texts = ARGV
Jaclip::Model.open(model_path) do |model|
  File.binwrite(File.join(outdir, "image.f32"), model.encode_images([image]).flatten.pack("e*"))
  File.binwrite(File.join(outdir, "text.f32"), model.encode_texts(texts).flatten.pack("e*"))
end
