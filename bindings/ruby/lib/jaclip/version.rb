module Jaclip
  VERSION = "0.1.0"
  # The C library version this gem was written against (MAJOR * 10000 + MINOR * 100 + PATCH).
  EXPECTED_VERSION_NUMBER = 100
end
