#include "sdinterp/compiled_package.h"

#include <sstream>
#include <vector>

#include "sdinterp/bundle_hash.h"

namespace sdinterp {
namespace {

std::string value_or(const std::map<std::string, std::string>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? "" : it->second;
}

// The CPU features each of inductor's vector ISA names (AOTI_CPU_ISA, upper case) compiles for.
const std::map<std::string, std::vector<std::string>>& isa_features() {
  static const std::map<std::string, std::vector<std::string>> table = {
      {"AVX2", {"avx2", "fma3"}},
      {"AVX512", {"avx512_f", "avx512_dq", "avx512_vl", "avx512_bw", "fma3"}},
      {"AVX512_VNNI", {"avx512_vnni", "avx512_vl"}},
      {"AMX_TILE", {"amx_tile", "amx_bf16", "amx_int8"}},
  };
  return table;
}

}  // namespace

std::string compiled_package_mismatch(const std::map<std::string, std::string>& metadata,
                                      const std::string& device_kind, const MachineFacts& here, int compiled_threads) {
  const std::string compiled_for = value_or(metadata, "AOTI_DEVICE_KEY");
  if (compiled_for != device_kind) {
    return "compiled for " + (compiled_for.empty() ? std::string("an unknown device") : compiled_for) +
           ", the bundle runs on " + device_kind;
  }
  const std::string machine = value_or(metadata, "AOTI_MACHINE");
  if (!machine.empty() && !here.machine.empty() && machine != here.machine) {
    return "compiled for " + machine + " machines, this one is " + here.machine;
  }
  if (device_kind == "cuda") {
    const std::string cc = value_or(metadata, "AOTI_COMPUTE_CAPABILITY");
    if (!cc.empty() && here.cuda_compute_capability >= 0 && cc != std::to_string(here.cuda_compute_capability)) {
      return "compiled for GPUs of compute capability " + cc + ", this one has " +
             std::to_string(here.cuda_compute_capability) + " (compile it again on this kind of GPU)";
    }
    return "";
  }
  // CPU: every feature of the instruction set the kernels were compiled for must be here.
  std::istringstream isa(value_or(metadata, "AOTI_CPU_ISA"));
  std::string name;
  while (isa >> name) {
    auto features = isa_features().find(name);
    if (features == isa_features().end()) continue;  // an ISA of another architecture, or none
    for (const std::string& f : features->second) {
      auto it = here.cpu.find(f);
      if (it == here.cpu.end() || !it->second) {
        return "compiled for CPUs with " + value_or(metadata, "AOTI_CPU_ISA") + ", this one lacks " + f +
               " (compile it again on this machine)";
      }
    }
  }
  if (compiled_threads > 0 && here.cpu_threads > 0 && compiled_threads != here.cpu_threads) {
    return "compiled to run on " + std::to_string(compiled_threads) + " CPU threads, this run has " +
           std::to_string(here.cpu_threads) +
           " (compile it again here, or set OMP_NUM_THREADS=" + std::to_string(compiled_threads) + ")";
  }
  return "";
}

std::string weights_signature(const std::map<std::string, std::vector<int64_t>>& shapes) {
  std::string text;
  for (const auto& [name, dims] : shapes) {  // std::map: sorted by name
    text += name + " ";
    for (size_t i = 0; i < dims.size(); ++i) text += (i ? "," : "") + std::to_string(dims[i]);
    text += "\n";
  }
  return fnv1a64_text(text);
}

}  // namespace sdinterp
