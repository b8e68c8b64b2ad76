#include "bundle/weights_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "sdinterp/errors.h"

namespace sdinterp {
namespace {

// safetensors dtype names (scripts/bundle_weights.py writes the same ones).
constexpr std::pair<const char*, torch::ScalarType> kWeightDtypes[] = {
    {"F32", torch::kFloat32}, {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16}, {"F64", torch::kFloat64},
    {"I64", torch::kInt64},   {"I32", torch::kInt32},   {"I16", torch::kInt16},     {"I8", torch::kInt8},
    {"U8", torch::kUInt8},    {"BOOL", torch::kBool}};
constexpr const char* kPaddingPrefix = "sdinterp.padding.";  // alignment gaps, not weights
constexpr int64_t kCopyChunk = int64_t{64} << 20;            // bytes per host-to-device copy

// A whole file mapped copy-on-write: weights on the CPU point into it, and each holds it alive.
struct Mapping {
  void* base = MAP_FAILED;
  size_t size = 0;
  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (base != MAP_FAILED) munmap(base, size);
  }
  const unsigned char* bytes() const { return static_cast<const unsigned char*>(base); }
};

[[noreturn]] void corrupt(const std::string& file, const std::string& what) {
  throw ModelError(file + ": " + what + " (the bundle is corrupt; re-export it)");
}

struct Entry {
  torch::ScalarType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // bytes, from the start of the data
};

std::shared_ptr<Mapping> map_file(const std::string& name) {
  const int fd = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) throw missing_bundle_file(name);
    throw ModelError(name + ": cannot open the weights file: " + std::strerror(errno));
  }
  struct stat st {};
  auto mapping = std::make_shared<Mapping>();
  int err = ::fstat(fd, &st) == 0 ? 0 : errno;
  if (err == 0 && st.st_size < 8) {
    ::close(fd);
    corrupt(name, "too short to be a weights file (" + std::to_string(st.st_size) + " bytes)");
  }
  if (err == 0) {
    mapping->size = static_cast<size_t>(st.st_size);
    mapping->base = ::mmap(nullptr, mapping->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (mapping->base == MAP_FAILED) err = errno;
  }
  ::close(fd);
  if (err != 0) throw ModelError(name + ": cannot map the weights file: " + std::strerror(err));
  ::madvise(mapping->base, mapping->size, MADV_WILLNEED);  // start reading a cold file now
  return mapping;
}

// Parses the header's entries (padding left out) and checks each against the file's data size.
std::unordered_map<std::string, Entry> parse_entries(const Mapping& file, const std::string& name,
                                                     uint64_t& data_start) {
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | file.bytes()[i];
  if (header_size > file.size - 8) corrupt(name, "truncated weights file (its header runs past the end)");
  data_start = 8 + header_size;
  const uint64_t data_size = file.size - data_start;
  const auto* text = reinterpret_cast<const char*>(file.bytes() + 8);
  nlohmann::json header = nlohmann::json::parse(text, text + header_size, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object())
    corrupt(name, "not a safetensors file (its header is not a JSON object)");
  std::unordered_map<std::string, Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__" || key.rfind(kPaddingPrefix, 0) == 0) continue;
    auto bad = [&](const std::string& what) { corrupt(name, "weight \"" + key + "\": " + what); };
    if (!value.is_object() || !value.contains("dtype") || !value["dtype"].is_string() || !value.contains("shape") ||
        !value["shape"].is_array() || !value.contains("data_offsets") || !value["data_offsets"].is_array() ||
        value["data_offsets"].size() != 2) {
      bad("expected an object with dtype, shape and two data_offsets");
    }
    Entry e{};
    const std::string dtype = value["dtype"].get<std::string>();
    const auto* known = std::find_if(std::begin(kWeightDtypes), std::end(kWeightDtypes),
                                     [&](const auto& d) { return dtype == d.first; });
    if (known == std::end(kWeightDtypes)) bad("unknown dtype \"" + dtype + "\"");
    e.dtype = known->second;
    uint64_t bytes = c10::elementSize(e.dtype);
    for (const auto& dim : value["shape"]) {
      if (!dim.is_number_unsigned() || dim.get<uint64_t>() > (uint64_t{1} << 40)) bad("a dimension is not a size");
      e.shape.push_back(dim.get<int64_t>());
      if (__builtin_mul_overflow(bytes, dim.get<uint64_t>(), &bytes)) bad("its size overflows");
    }
    for (const auto& off : value["data_offsets"]) {
      if (!off.is_number_unsigned()) bad("data_offsets are not byte offsets");
    }
    e.begin = value["data_offsets"][0].get<uint64_t>();
    e.end = value["data_offsets"][1].get<uint64_t>();
    if (e.begin > e.end || e.end > data_size) bad("its data lie outside the file (truncated?)");
    if (e.end - e.begin != bytes)
      bad("its data are " + std::to_string(e.end - e.begin) + " bytes, its shape needs " + std::to_string(bytes));
    if ((data_start + e.begin) % c10::elementSize(e.dtype) != 0) bad("its data are not aligned to its dtype");
    entries.emplace(key, std::move(e));
  }
  return entries;
}

}  // namespace

void attach_weights(torch::jit::Module& module, const std::filesystem::path& file, const torch::Device& device) {
  attach_weights(module, file, device, device.is_cpu() ? WeightsPlacement::kMapped : WeightsPlacement::kCopied);
}

void attach_weights(torch::jit::Module& module, const std::filesystem::path& file, const torch::Device& device,
                    WeightsPlacement placement) {
  if (placement == WeightsPlacement::kMapped && !device.is_cpu()) {
    throw std::logic_error("attach_weights: mapped weights are for the CPU");
  }
  const bool mapped = placement == WeightsPlacement::kMapped;
  const std::string name = file.string();
  const std::shared_ptr<Mapping> mapping = map_file(name);
  uint64_t data_start = 0;
  std::unordered_map<std::string, Entry> entries = parse_entries(*mapping, name, data_start);

  std::vector<std::pair<std::string, torch::Tensor>> wanted;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) wanted.emplace_back(p.name, p.value);
  for (const auto& b : module.named_buffers(/*recurse=*/true)) wanted.emplace_back(b.name, b.value);
  for (const auto& [key, placeholder] : wanted) {
    const auto found = entries.find(key);
    if (found == entries.end()) corrupt(name, "has no weight \"" + key + "\", which the module needs");
    const Entry& e = found->second;
    if (e.dtype != placeholder.scalar_type() || c10::IntArrayRef(e.shape) != placeholder.sizes()) {
      corrupt(name, "weight \"" + key + "\" is " + c10::toString(e.dtype) + c10::str(c10::IntArrayRef(e.shape)) +
                        ", the module's is " + c10::toString(placeholder.scalar_type()) +
                        c10::str(placeholder.sizes()));
    }
  }
  if (entries.size() != wanted.size()) {
    for (const auto& [key, placeholder] : wanted) entries.erase(key);
    corrupt(name, "holds weights the module does not have, such as \"" + entries.begin()->first + "\"");
  }

  const uint64_t data_size = mapping->size - data_start;
  unsigned char* data = static_cast<unsigned char*>(mapping->base) + data_start;
  torch::Tensor on_device;  // CUDA: the file's data, copied in one piece
  if (!mapped && data_size > 0) {
    on_device = torch::empty({static_cast<int64_t>(data_size)}, torch::dtype(torch::kUInt8).device(device));
    for (int64_t at = 0; at < static_cast<int64_t>(data_size); at += kCopyChunk) {
      const int64_t n = std::min<int64_t>(kCopyChunk, static_cast<int64_t>(data_size) - at);
      on_device.narrow(0, at, n).copy_(torch::from_blob(data + at, {n}, torch::kUInt8));
    }
  }
  for (const auto& [key, placeholder] : wanted) {
    const Entry& e = entries.at(key);
    torch::Tensor weight;
    if (mapped) {
      weight = torch::from_blob(
          data + e.begin, e.shape, [mapping](void*) {}, torch::dtype(e.dtype));
    } else {
      weight = torch::empty(on_device.defined() ? c10::IntArrayRef{0} : c10::IntArrayRef(e.shape),
                            torch::dtype(e.dtype).device(device));
      if (on_device.defined()) {
        const auto item = static_cast<int64_t>(c10::elementSize(e.dtype));
        weight.set_(on_device.storage(), static_cast<int64_t>(e.begin) / item, e.shape);
      }
    }
    // The owner of `key` ("down_blocks.0.resnets.0.conv1.weight") takes the weight in the placeholder's place.
    torch::jit::Module owner = module;
    std::string::size_type from = 0, dot = 0;
    while ((dot = key.find('.', from)) != std::string::npos) {
      owner = owner.attr(key.substr(from, dot - from)).toModule();
      from = dot + 1;
    }
    owner.setattr(key.substr(from), weight);
  }
}

}  // namespace sdinterp
