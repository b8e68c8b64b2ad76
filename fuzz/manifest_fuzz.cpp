// libFuzzer: arbitrary bytes as model.json. Either a Manifest or a ModelError, never a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "sdinterp/errors.h"
#include "sdinterp/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    sdinterp::Manifest m = sdinterp::parse_manifest(text, "model.json");
    // A manifest that parses is usable: sizes are positive, the native size is computable.
    if (m.native_size() <= 0 || m.text_encoder.hidden_size <= 0) __builtin_trap();
  } catch (const sdinterp::ModelError&) {
  }
  return 0;
}
