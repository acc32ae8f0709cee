#!/usr/bin/python3
"""Zero-shot classification with the Python binding.

    classify.py MODEL IMAGE LABEL... [--template T]... [--scale S]
    e.g. classify.py model.jaclip dog.jpeg 犬 猫 象 --template '{}の写真'

Output: one line per label, best first: "PROBABILITY<TAB>LABEL", the probability as %.9g (the same
format as classify.cpp and classify.rb)."""
import argparse
import sys

import jaclip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("image")
    parser.add_argument("labels", nargs="+")
    parser.add_argument("--template", action="append", help="prompt with {} for the label (repeatable)")
    parser.add_argument("--scale", type=float, default=100.0)
    args = parser.parse_args()
    try:
        with jaclip.Model(args.model) as model:
            for label, probability in model.classify(args.image, args.labels, template=args.template, scale=args.scale):
                print(f"{probability:.9g}\t{label}")
    except jaclip.Error as e:
        print(f"classify: {e.message} ({jaclip.status_string(e.status)})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
