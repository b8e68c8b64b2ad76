// libFuzzer: arbitrary bytes as a bundle's weights file (X.safetensors). Either a header whose every
// weight lies inside the file, sized by its shape and aligned to its dtype, or a ModelError; never
// a crash.
#include <cstddef>
#include <cstdint>

#include "bundle/weights_header.h"
#include "sdinterp/errors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const sdinterp::WeightsHeader h = sdinterp::parse_weights_header(data, size, "unet.safetensors");
    if (h.data_start < 8 || h.data_start > size) __builtin_trap();
    for (const auto& [name, w] : h.weights) {
      uint64_t bytes = w.element_bytes;
      for (int64_t d : w.shape) bytes *= static_cast<uint64_t>(d);
      if (w.begin > w.end || w.end > size - h.data_start || w.end - w.begin != bytes) __builtin_trap();
      if ((h.data_start + w.begin) % w.element_bytes != 0) __builtin_trap();
    }
  } catch (const sdinterp::ModelError&) {
  }
  return 0;
}
