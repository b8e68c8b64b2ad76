// The weights of a format version 3 bundle's module (X.safetensors beside X.pt; the format is
// described in scripts/bundle_weights.py, which writes it).
#pragma once

#include <torch/script.h>

#include <filesystem>

namespace sdinterp {

// Replaces every parameter and buffer of `module` (placeholders in X.pt) by its weights from
// `file`, a safetensors file, without reading it into a buffer: the file is mapped, and on the CPU
// the weights are used where they lie (copy-on-write, the page cache's pages shared with other
// processes); on CUDA the file's data is copied to `device` in one piece and the weights are views
// of it. Throws ModelError, one line naming the file, for a missing, short or malformed file, and
// for weights whose names, dtypes or shapes differ from the module's.
void attach_weights(torch::jit::Module& module, const std::filesystem::path& file, const torch::Device& device);

// How the weights reach the module: mapped (the CPU's way) or copied to `device` in one piece (CUDA's
// way; on the CPU for tests, so that the device path runs here too).
enum class WeightsPlacement { kMapped, kCopied };
void attach_weights(torch::jit::Module& module, const std::filesystem::path& file, const torch::Device& device,
                    WeightsPlacement placement);

}  // namespace sdinterp
