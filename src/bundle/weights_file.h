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

// How the weights reach the module: mapped (the CPU's way), copied to `device` in one piece (CUDA's
// way; on the CPU for tests, so that the device path runs here too), or the same through pinned
// buffers by several threads (staged_copy; SDINTERP_PINNED_UPLOAD=1 on CUDA, a measuring switch).
enum class WeightsPlacement { kMapped, kCopied, kStaged };
void attach_weights(torch::jit::Module& module, const std::filesystem::path& file, const torch::Device& device,
                    WeightsPlacement placement);

// Copies `size` bytes at `source` (host memory: a mapped file) into `destination`, a contiguous
// uint8 tensor of at least `size` bytes, in pieces of `piece_bytes` shared out among `threads`
// threads. On CUDA each thread has a stream and two pinned (page-locked) host buffers: it copies a
// piece into one buffer while the other's copy to the device runs, so the host's copying (page
// faults included) runs on several cores and the device's copies are asynchronous from pinned
// memory; it returns once every copy is over. On the CPU the pieces are copied directly (for the
// tests: the pieces' sharing-out is the same). Throws ModelError when CUDA refuses a step.
void staged_copy(const unsigned char* source, int64_t size, torch::Tensor& destination, int64_t piece_bytes,
                 int threads);

}  // namespace sdinterp
