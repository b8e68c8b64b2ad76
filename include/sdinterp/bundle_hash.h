// Content hashes of a bundle's files, for run metadata and bug reports. No torch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sdinterp/manifest.h"

namespace sdinterp {

// FNV-1a 64 of a string's bytes, as 16 hex digits (the compiled UNet's weights signature).
std::string fnv1a64_text(const std::string& text);

// XXH64 (seed 0) of bytes, as 16 hex digits: what `xxh64sum` prints for a file of those bytes.
std::string xxh64_hex(const void* data, size_t size);

// The algorithms bundle_hashes knows, by the name run metadata records ("xxh64", "fnv1a-64"); the
// first is the one a run records. Each hashes a file's bytes, or a string's, to 16 hex digits (a
// file that cannot be read: IoError).
struct FileHashAlgorithm {
  const char* name;
  std::string (*file)(const std::string& path);
  std::string (*text)(const std::string& text);
};
const std::vector<FileHashAlgorithm>& file_hash_algorithms();
// The algorithm of that name, or nullptr.
const FileHashAlgorithm* find_file_hash_algorithm(const std::string& name);
// The algorithm a run records.
const FileHashAlgorithm& recorded_file_hash_algorithm();

// The files bundle_hashes covers, by their names in the bundle: Manifest::files(), and the
// compiled UNet when present (it is optional at run time: a missing one falls back to unet.pt).
std::vector<std::string> hashed_bundle_files(const std::string& dir, const Manifest& manifest);

// What shows that a file changed without reading it: its device, inode, size, and modification and
// status-change times ("missing" when it is not there). By name in `dir`.
using FileSignatures = std::map<std::string, std::string>;
FileSignatures file_signatures(const std::string& dir, const std::vector<std::string>& files);
// The names whose signature is not what `before` recorded ("" when none): "model.json, unet.pt".
std::string changed_files(const std::string& dir, const FileSignatures& before);

// {"algorithm": "xxh64", "files": {"model.json": "...", "unet.pt": "...", ...}, "combined": "..."}
// over model.json, the tokenizer files, every module the manifest names and its weights file,
// and the compiled UNet when present. `algorithm` defaults to the one a run records; the combined
// hash is the same algorithm's of the lines "NAME=HASH\n" in name order.
nlohmann::json bundle_hashes(const std::string& dir, const Manifest& manifest,
                             const FileHashAlgorithm& algorithm = recorded_file_hash_algorithm());

}  // namespace sdinterp
