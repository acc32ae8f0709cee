"""features.py MODEL IMAGE OUTDIR TEXT...: features.c through the Python binding (bytes input for the
image, so the buffer path is the one compared)."""
import os
import sys

import jaclip

model_path, image, outdir, *texts = sys.argv[1:]
with jaclip.Model(model_path) as model, open(image, "rb") as f:
    image_features = model.encode_images([f.read()])
    text_features = model.encode_texts(texts)
for name, x in (("image.f32", image_features), ("text.f32", text_features)):
    with open(os.path.join(outdir, name), "wb") as out:
        out.write(x.tobytes())
