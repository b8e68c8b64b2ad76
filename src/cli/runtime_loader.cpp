#include <cstddef>
#include <cstdlib>
#include <string>

#include "cli/interrupt.h"
#include "cli/runtime.h"
#include "io/module_loader.h"
#include "sdinterp/cuda_start.h"
#include "sdinterp/errors.h"

namespace sdinterp::cli {
namespace {

bool host_interrupted() { return interrupt_requested(); }

// Sets the first of `variables` to `value` unless the user set any of them (runtime.h's lists).
template <std::size_t N>
void set_unless_user_chose(const char* const (&variables)[N], const char* value) {
  for (const char* name : variables) {
    if (std::getenv(name) != nullptr) return;
  }
  ::setenv(variables[0], value, 0);
}

// LibTorch's CPU threads come from GNU OpenMP, whose idle threads spin for 300,000 rounds before
// they sleep. Several sdinterp processes on one machine (a batch script running jobs side by
// side) then burn the cores spinning against each other: measured on 2 cores, two tiny-sd runs at
// once (30 frames x 15 steps) took 4-73 s each, erratically, with 96% of the time in libgomp's spin
// loop. With a spin of 1,000 rounds they take 2.7-2.9 s each, and a lone run is no slower (1.4-1.6 s
// against 1.8 s); passive waiting (no spin) was as good side by side but cost a lone run 10-30%
// (bench/concurrent_runs.sh). libgomp reads its environment when it is loaded, which is when the
// runtime is (nothing in the executable loads it earlier); a user's own setting wins.
void tune_openmp() { set_unless_user_chose(kOpenMpWaitVariables, kDefaultGompSpinCount); }

// LibTorch's CUDA allocator keeps the memory it freed for later calls, in segments of the sizes
// first asked for. A job's UNet calls leave it segments sized for their activations, which the
// VAE decode's larger tensors cannot use, so the decode adds its own beside them: the device's
// peak is then near the sum of both phases, not the larger (diffusers' 30-frame call on the H100:
// 35.0 GiB reserved for 17.1 GiB at most in use). Expandable segments grow one mapping per stream
// instead, where freed neighbours merge, so the decode takes the space the UNet freed. LibTorch
// reads the setting when it first allocates on a device; a user's own setting wins.
void tune_cuda_allocator() { set_unless_user_chose(kCudaAllocConfVariables, kDefaultCudaAllocConf); }

}  // namespace

Runtime& runtime(const RunConfig* first_job) {
  static Runtime* instance = nullptr;  // never freed: the library is never unloaded
  if (instance != nullptr) return *instance;
  if (first_job != nullptr) start_cuda_context(job_cuda_device(*first_job));
  tune_openmp();
  tune_cuda_allocator();
  const io::ModuleSymbol module = io::load_module_symbol("libsdinterp_runtime.so", {}, kRuntimeEntryPoint);
  if (module.address == nullptr) {
    throw Error(kExitInternal, "cannot load the model runtime: " + module.error + " (rebuild with scripts/build.sh)");
  }
  static const RuntimeHost host{&host_interrupted, &io::own_temporary_list()};
  instance = reinterpret_cast<RuntimeEntryPoint>(module.address)(&host, kRuntimeInterfaceVersion);
  if (instance == nullptr) {
    throw Error(kExitInternal, module.path + " is from another build of sdinterp: rebuild with scripts/build.sh");
  }
  return *instance;
}

}  // namespace sdinterp::cli
