// Content hashes of a bundle's files, for run metadata and bug reports. No torch.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "sdinterp/manifest.h"

namespace sdinterp {

// FNV-1a 64 of a file's bytes, as 16 hex digits. Throws IoError if unreadable.
std::string fnv1a64_file(const std::string& path);
// FNV-1a 64 of a string's bytes, as 16 hex digits.
std::string fnv1a64_text(const std::string& text);

// {"algorithm": "fnv1a-64", "files": {"model.json": "...", "unet.pt": "...", ...}, "combined": "..."}
// over model.json, the tokenizer files and every module the manifest names.
nlohmann::json bundle_hashes(const std::string& dir, const Manifest& manifest);

}  // namespace sdinterp
