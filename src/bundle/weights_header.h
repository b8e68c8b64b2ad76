// The header of a format version 3 bundle's weights file (X.safetensors beside X.pt): parsed and
// checked without LibTorch, so that the fuzzers reach it. scripts/bundle_weights.py writes the
// format (a safetensors file whose tensors' data start on 256 bytes, the gaps named
// "sdinterp.padding.N").
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sdinterp {

// The safetensors dtypes a weight may have (scripts/bundle_weights.py writes the same names).
enum class WeightDtype { kF32, kF16, kBF16, kF64, kI64, kI32, kI16, kI8, kU8, kBool };
struct WeightDtypeInfo {
  const char* name;  // as safetensors spells it: "F32"
  WeightDtype dtype;
  size_t bytes;  // per element
};
const std::vector<WeightDtypeInfo>& weight_dtypes();

struct WeightEntry {
  WeightDtype dtype;
  size_t element_bytes;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // bytes, from the start of the data
};

struct WeightsHeader {
  uint64_t data_start = 0;                     // the data's offset in the file (8 + the header's length)
  std::map<std::string, WeightEntry> weights;  // the padding left out
};

// Parses the first `size` bytes of the weights file `name` (all of it) and checks every entry:
// a known dtype, a shape whose size is its data's, data inside the file and aligned to the dtype.
// Throws ModelError naming `name` ("... (the bundle is corrupt; re-export it)").
WeightsHeader parse_weights_header(const unsigned char* bytes, uint64_t size, const std::string& name);

// Reads the header of the weights file at `path` from disk (not its data) and checks it against
// the file's size as parse_weights_header does: what `info --bundle` checks without loading.
// Throws ModelError (a missing file as missing_bundle_file).
WeightsHeader read_weights_header(const std::string& path);

// The ModelError of a corrupt weights file: "FILE: WHAT (the bundle is corrupt; re-export it)".
[[noreturn]] void corrupt_weights_file(const std::string& name, const std::string& what);

}  // namespace sdinterp
