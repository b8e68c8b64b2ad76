// libFuzzer: arbitrary bytes as an image-morph input's file, for its orientation tag (EXIF in a
// JPEG's APP1 segment or a PNG's eXIf chunk, else XMP). Always 1 to 8, never a read out of bounds.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "io/image_orientation.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int orientation = sdinterp::io::image_orientation(std::string_view(reinterpret_cast<const char*>(data), size));
  if (orientation < 1 || orientation > 8) __builtin_trap();
  return 0;
}
