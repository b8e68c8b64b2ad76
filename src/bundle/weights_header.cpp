#include "bundle/weights_header.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "sdinterp/errors.h"

namespace sdinterp {
namespace {
constexpr const char* kPaddingPrefix = "sdinterp.padding.";  // alignment gaps, not weights

// The header's length in bytes: the file's first 8 bytes, little-endian.
uint64_t header_length(const unsigned char* first8) {
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | first8[i];
  return length;
}
}  // namespace

const std::vector<WeightDtypeInfo>& weight_dtypes() {
  static const std::vector<WeightDtypeInfo> table = {{"F32", WeightDtype::kF32, 4},   {"F16", WeightDtype::kF16, 2},
                                                     {"BF16", WeightDtype::kBF16, 2}, {"F64", WeightDtype::kF64, 8},
                                                     {"I64", WeightDtype::kI64, 8},   {"I32", WeightDtype::kI32, 4},
                                                     {"I16", WeightDtype::kI16, 2},   {"I8", WeightDtype::kI8, 1},
                                                     {"U8", WeightDtype::kU8, 1},     {"BOOL", WeightDtype::kBool, 1}};
  return table;
}

void corrupt_weights_file(const std::string& name, const std::string& what) {
  throw ModelError(name + ": " + what + " (the bundle is corrupt; re-export it)");
}

WeightsHeader parse_weights_header(const unsigned char* bytes, uint64_t size, const std::string& name) {
  if (size < 8) corrupt_weights_file(name, "too short to be a weights file (" + std::to_string(size) + " bytes)");
  const uint64_t header_size = header_length(bytes);
  if (header_size > size - 8) corrupt_weights_file(name, "truncated weights file (its header runs past the end)");
  WeightsHeader out;
  out.data_start = 8 + header_size;
  const uint64_t data_size = size - out.data_start;
  const auto* text = reinterpret_cast<const char*>(bytes + 8);
  const nlohmann::json header = nlohmann::json::parse(text, text + header_size, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    corrupt_weights_file(name, "not a safetensors file (its header is not a JSON object)");
  }
  for (const auto& item : header.items()) {
    const std::string& key = item.key();  // not a structured binding: the lambda below captures it
    const nlohmann::json& value = item.value();
    if (key == "__metadata__" || key.rfind(kPaddingPrefix, 0) == 0) continue;
    auto bad = [&](const std::string& what) { corrupt_weights_file(name, "weight \"" + key + "\": " + what); };
    if (!value.is_object() || !value.contains("dtype") || !value.at("dtype").is_string() || !value.contains("shape") ||
        !value.at("shape").is_array() || !value.contains("data_offsets") || !value.at("data_offsets").is_array() ||
        value.at("data_offsets").size() != 2) {
      bad("expected an object with dtype, shape and two data_offsets");
    }
    const std::string dtype = value.at("dtype").get<std::string>();
    const auto& dtypes = weight_dtypes();
    const auto known =
        std::find_if(dtypes.begin(), dtypes.end(), [&](const WeightDtypeInfo& d) { return dtype == d.name; });
    if (known == dtypes.end()) bad("unknown dtype \"" + dtype + "\"");
    WeightEntry e{known->dtype, known->bytes, {}, 0, 0};
    uint64_t data_bytes = known->bytes;
    for (const auto& dim : value.at("shape")) {
      if (!dim.is_number_unsigned() || dim.get<uint64_t>() > (uint64_t{1} << 40)) bad("a dimension is not a size");
      e.shape.push_back(dim.get<int64_t>());
      if (__builtin_mul_overflow(data_bytes, dim.get<uint64_t>(), &data_bytes)) bad("its size overflows");
    }
    for (const auto& off : value.at("data_offsets")) {
      if (!off.is_number_unsigned()) bad("data_offsets are not byte offsets");
    }
    e.begin = value.at("data_offsets")[0].get<uint64_t>();
    e.end = value.at("data_offsets")[1].get<uint64_t>();
    if (e.begin > e.end || e.end > data_size) bad("its data lie outside the file (truncated?)");
    if (e.end - e.begin != data_bytes) {
      bad("its data are " + std::to_string(e.end - e.begin) + " bytes, its shape needs " + std::to_string(data_bytes));
    }
    if ((out.data_start + e.begin) % e.element_bytes != 0) bad("its data are not aligned to its dtype");
    out.weights.emplace(key, std::move(e));
  }
  return out;
}

WeightsHeader read_weights_header(const std::string& path) {
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  std::ifstream in(path, std::ios::binary);
  if (ec || !in) {
    if (!std::filesystem::exists(path, ec)) throw missing_bundle_file(path);
    throw ModelError(path + ": cannot open the weights file: " + std::strerror(errno));
  }
  std::vector<unsigned char> head(std::min<uint64_t>(size, 8));
  in.read(reinterpret_cast<char*>(head.data()), static_cast<std::streamsize>(head.size()));
  if (head.size() == 8) {
    const uint64_t header_size = header_length(head.data());
    constexpr uint64_t kLargestHeader = uint64_t{256} << 20;  // real ones are well under 1 MiB
    if (header_size <= size - 8) {
      if (header_size > kLargestHeader) corrupt_weights_file(path, "its header is too large to be one");
      head.resize(8 + header_size);
      in.read(reinterpret_cast<char*>(head.data()) + 8, static_cast<std::streamsize>(header_size));
    }
  }
  if (!in) throw ModelError(path + ": cannot read the weights file");
  return parse_weights_header(head.data(), size, path);
}

}  // namespace sdinterp
