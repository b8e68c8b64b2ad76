// Whether an AOTInductor package (a bundle's unet.pt2) can run here, from the metadata it was
// compiled with. A package holds machine code for the CPU instruction set or the GPU architecture
// of the machine that compiled it: run elsewhere it would die on an illegal instruction or fail
// with "no kernel image". No torch.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sdinterp {

struct MachineFacts {
  std::string machine;               // uname's machine, e.g. "x86_64"
  std::map<std::string, bool> cpu;   // LibTorch's CPU capability names, e.g. "avx512_f" -> true
  int cuda_compute_capability = -1;  // 10 * major + minor of the device to run on; -1: CPU run
  int cpu_threads = 0;               // threads LibTorch runs CPU kernels on; 0: unknown
};

// "" when a package compiled with `metadata` (AOTI_DEVICE_KEY, AOTI_MACHINE, AOTI_CPU_ISA,
// AOTI_COMPUTE_CAPABILITY) can run on `device_kind` ("cpu" or "cuda") of this machine; otherwise
// why not, as the end of a sentence ("compiled for cuda, the bundle runs on cpu").
// `compiled_threads`: the CPU threads the package was compiled for (inductor writes the count into
// its CPU kernels; 0: not recorded). A CPU package made for another count would run on that many
// threads here, slower than TorchScript, so it counts as a mismatch too.
std::string compiled_package_mismatch(const std::map<std::string, std::string>& metadata,
                                      const std::string& device_kind, const MachineFacts& here,
                                      int compiled_threads = 0);

// A fingerprint of the weights a package was compiled against: FNV-1a 64 (16 hex digits) of one
// line "NAME D0,D1,...\n" per weight, sorted by name. The exporter records it
// (unet.compiled.weights_fnv1a64); sdinterp recomputes it from unet.pt, so that a package copied
// from a model with the same names but other shapes is refused instead of reading out of bounds.
std::string weights_signature(const std::map<std::string, std::vector<int64_t>>& shapes);

}  // namespace sdinterp
