#include "sdinterp/bundle_hash.h"

#include <filesystem>

#include <cstdio>
#include <memory>
#include <vector>

#include "sdinterp/errors.h"

namespace sdinterp {
namespace {

constexpr uint64_t kFnvOffset = 14695981039346656037ULL;  // the FNV-1a 64 offset basis
constexpr uint64_t kFnvPrime = 1099511628211ULL;

uint64_t fnv1a64(const unsigned char* data, size_t size, uint64_t hash) {
  for (size_t i = 0; i < size; ++i) hash = (hash ^ data[i]) * kFnvPrime;
  return hash;
}

std::string hex(uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(value));
  return buf;
}

}  // namespace

std::string fnv1a64_text(const std::string& text) {
  return hex(fnv1a64(reinterpret_cast<const unsigned char*>(text.data()), text.size(), kFnvOffset));
}

std::string fnv1a64_file(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw IoError(path + ": cannot read the file to hash it");
  std::vector<unsigned char> buffer(1 << 20);
  uint64_t hash = kFnvOffset;
  size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), file.get())) > 0) hash = fnv1a64(buffer.data(), n, hash);
  if (std::ferror(file.get())) throw IoError(path + ": read error while hashing");
  return hex(hash);
}

nlohmann::json bundle_hashes(const std::string& dir, const Manifest& m) {
  std::vector<std::string> files = m.files();
  // The compiled UNet is optional at run time (a missing one falls back to unet.pt): hashed when present.
  std::error_code ec;
  if (!m.unet.compiled.file.empty() && std::filesystem::is_regular_file(dir + "/" + m.unet.compiled.file, ec)) {
    files.push_back(m.unet.compiled.file);
  }
  nlohmann::json out = {{"algorithm", "fnv1a-64"}, {"files", nlohmann::json::object()}};
  std::string all;
  for (const auto& f : files) {
    std::string h = fnv1a64_file(dir + "/" + f);
    out["files"][f] = h;
    all += f + "=" + h + "\n";
  }
  out["combined"] = fnv1a64_text(all);
  return out;
}

}  // namespace sdinterp
