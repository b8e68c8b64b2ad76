#include "sdinterp/bundle_hash.h"

#include <sys/stat.h>

#include <filesystem>

#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "sdinterp/errors.h"

namespace sdinterp {
namespace {

std::string hex(uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(value));
  return buf;
}

// FNV-1a 64: one byte at a time, about 1 GiB/s on one core.
constexpr uint64_t kFnvOffset = 14695981039346656037ULL;  // the FNV-1a 64 offset basis
constexpr uint64_t kFnvPrime = 1099511628211ULL;

uint64_t fnv1a64(const unsigned char* data, size_t size, uint64_t hash) {
  for (size_t i = 0; i < size; ++i) hash = (hash ^ data[i]) * kFnvPrime;
  return hash;
}

// XXH64 with seed 0, written from the xxHash specification (doc/xxhash_spec.md, "XXH64 Algorithm
// Description"): four accumulators over 32-byte stripes, then the tail and the avalanche. Eight
// bytes per multiply on four independent lanes.
constexpr uint64_t kP1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4FULL;
constexpr uint64_t kP3 = 0x165667B19E3779F9ULL;
constexpr uint64_t kP4 = 0x85EBCA77C2B2AE63ULL;
constexpr uint64_t kP5 = 0x27D4EB2F165667C5ULL;

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
// The format is little-endian; so is every machine sdinterp builds for (x86-64, AArch64).
inline uint64_t read64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint64_t read32(const unsigned char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t xxh_round(uint64_t acc, uint64_t lane) { return rotl(acc + lane * kP2, 31) * kP1; }
inline uint64_t xxh_merge(uint64_t acc, uint64_t lane) { return (acc ^ xxh_round(0, lane)) * kP1 + kP4; }

// XXH64 fed in pieces: whole 32-byte stripes first, then the last piece's rest.
class Xxh64 {
 public:
  static constexpr size_t kStripe = 32;
  // Feeds the whole stripes of `size` bytes; returns how many bytes that was.
  size_t stripes(const unsigned char* data, size_t size) {
    const size_t whole = size - size % kStripe;
    for (size_t i = 0; i < whole; i += kStripe) {
      for (int lane = 0; lane < 4; ++lane) v_[lane] = xxh_round(v_[lane], read64(data + i + 8 * lane));
    }
    total_ += whole;
    return whole;
  }

  // The hash, after the stripes, of the last `size` (< 32) bytes.
  uint64_t finish(const unsigned char* p, size_t size) const {
    uint64_t h = kP5;  // seed + P5, for input shorter than a stripe
    if (total_ > 0) {
      h = rotl(v_[0], 1) + rotl(v_[1], 7) + rotl(v_[2], 12) + rotl(v_[3], 18);
      for (uint64_t v : v_) h = xxh_merge(h, v);
    }
    h += total_ + size;
    for (; size >= 8; p += 8, size -= 8) h = rotl(h ^ xxh_round(0, read64(p)), 27) * kP1 + kP4;
    if (size >= 4) {
      h = rotl(h ^ (read32(p) * kP1), 23) * kP2 + kP3;
      p += 4;
      size -= 4;
    }
    for (; size > 0; ++p, --size) h = rotl(h ^ (*p * kP5), 11) * kP1;
    h ^= h >> 33;
    h *= kP2;
    h ^= h >> 29;
    h *= kP3;
    h ^= h >> 32;
    return h;
  }

 private:
  // seed + P1 + P2, seed + P2, seed, seed - P1 (unsigned wrap-around, as the specification has it)
  uint64_t v_[4] = {kP1 + kP2, kP2, 0, 0 - kP1};
  uint64_t total_ = 0;
};

// Reads a file in 1 MiB pieces (whole ones until its end) and feeds them to `feed(data, n, last)`.
template <typename Feed>
void read_file_for_hash(const std::string& path, Feed feed) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw IoError(path + ": cannot read the file to hash it");
  std::vector<unsigned char> buffer(1 << 20);
  for (;;) {
    const size_t n = std::fread(buffer.data(), 1, buffer.size(), file.get());
    if (std::ferror(file.get())) throw IoError(path + ": read error while hashing");
    const bool last = n < buffer.size();  // fread fills the buffer unless the file ends
    feed(buffer.data(), n, last);
    if (last) return;
  }
}

std::string xxh64_file(const std::string& path) {
  Xxh64 state;
  uint64_t hash = 0;
  read_file_for_hash(path, [&](const unsigned char* data, size_t n, bool last) {
    const size_t fed = state.stripes(data, n);
    if (last) hash = state.finish(data + fed, n - fed);
  });
  return hex(hash);
}

std::string fnv1a64_file(const std::string& path) {
  uint64_t hash = kFnvOffset;
  read_file_for_hash(path, [&](const unsigned char* data, size_t n, bool) { hash = fnv1a64(data, n, hash); });
  return hex(hash);
}

std::string xxh64_text(const std::string& text) { return xxh64_hex(text.data(), text.size()); }

}  // namespace

std::string fnv1a64_text(const std::string& text) {
  return hex(fnv1a64(reinterpret_cast<const unsigned char*>(text.data()), text.size(), kFnvOffset));
}

std::string xxh64_hex(const void* data, size_t size) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  Xxh64 state;
  const size_t fed = state.stripes(bytes, size);
  return hex(state.finish(bytes + fed, size - fed));
}

const std::vector<FileHashAlgorithm>& file_hash_algorithms() {
  // The one table. Run metadata written before sdinterp hashed with XXH64 records fnv1a-64: still checked.
  static const std::vector<FileHashAlgorithm> table = {
      {"xxh64", &xxh64_file, &xxh64_text},
      {"fnv1a-64", &fnv1a64_file, &fnv1a64_text},
  };
  return table;
}

const FileHashAlgorithm* find_file_hash_algorithm(const std::string& name) {
  for (const FileHashAlgorithm& a : file_hash_algorithms()) {
    if (name == a.name) return &a;
  }
  return nullptr;
}

const FileHashAlgorithm& recorded_file_hash_algorithm() { return file_hash_algorithms().front(); }

std::vector<std::string> hashed_bundle_files(const std::string& dir, const Manifest& m) {
  std::vector<std::string> files = m.files();
  std::error_code ec;
  for (const auto& c : m.compiled_modules()) {
    if (std::filesystem::is_regular_file(dir + "/" + c.record->file, ec)) files.push_back(c.record->file);
  }
  return files;
}

FileSignatures file_signatures(const std::string& dir, const std::vector<std::string>& files) {
  FileSignatures out;
  for (const std::string& name : files) {
    struct stat st {};
    if (::stat((dir + "/" + name).c_str(), &st) != 0) {
      out[name] = "missing";
      continue;
    }
    out[name] = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
                std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + ":" +
                std::to_string(st.st_ctim.tv_sec) + "." + std::to_string(st.st_ctim.tv_nsec);
  }
  return out;
}

std::string changed_files(const std::string& dir, const FileSignatures& before) {
  std::vector<std::string> names;
  for (const auto& [name, signature] : before) names.push_back(name);
  std::string list;
  for (const auto& [name, signature] : file_signatures(dir, names)) {
    if (signature != before.at(name)) list += (list.empty() ? "" : ", ") + name;
  }
  return list;
}

nlohmann::json bundle_hashes(const std::string& dir, const Manifest& m, const FileHashAlgorithm& algorithm) {
  nlohmann::json out = {{"algorithm", algorithm.name}, {"files", nlohmann::json::object()}};
  for (const auto& f : hashed_bundle_files(dir, m)) out["files"][f] = algorithm.file(dir + "/" + f);
  std::string all;  // in name order, the order the metadata lists them
  for (const auto& [name, hash] : out["files"].items()) all += name + "=" + hash.get<std::string>() + "\n";
  out["combined"] = algorithm.text(all);
  return out;
}

}  // namespace sdinterp
