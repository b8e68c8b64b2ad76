#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <string>

#include "cli/interrupt.h"
#include "cli/runtime.h"
#include "sdinterp/errors.h"

namespace sdinterp::cli {
namespace {

// The folder of the running executable (the runtime library is built beside it).
std::string executable_dir() {
  char path[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0) throw Error(kExitInternal, "cannot find the sdinterp executable's folder (/proc/self/exe)");
  std::string exe(path, static_cast<size_t>(n));
  return exe.substr(0, exe.rfind('/'));
}

bool host_interrupted() { return interrupt_requested(); }

// LibTorch's CPU threads come from GNU OpenMP, whose idle threads spin for 300,000 rounds before
// they sleep. Several sdinterp processes on one machine (a batch script running jobs side by
// side) then burn the cores spinning against each other: measured on 2 cores, two tiny-sd runs at
// once (30 frames x 15 steps) took 4-73 s each, erratically, with 96% of the time in libgomp's spin
// loop. With a spin of 1,000 rounds they take 2.7-2.9 s each, and a lone run is no slower (1.4-1.6 s
// against 1.8 s); passive waiting (no spin) was as good side by side but cost a lone run 10-30%
// (bench/concurrent_runs.sh). libgomp reads its environment when it is loaded, which is when the
// runtime is (nothing in the executable loads it earlier); a user's own setting wins.
void tune_openmp() {
  if (std::getenv("OMP_WAIT_POLICY") == nullptr && std::getenv("GOMP_SPINCOUNT") == nullptr) {
    ::setenv("GOMP_SPINCOUNT", kDefaultGompSpinCount, 0);
  }
}

}  // namespace

Runtime& runtime() {
  static Runtime* instance = nullptr;  // never freed: the library is never unloaded
  if (instance != nullptr) return *instance;
  tune_openmp();
  const std::string path = executable_dir() + "/libsdinterp_runtime.so";
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    throw Error(kExitInternal, "cannot load the model runtime: " + std::string(why != nullptr ? why : path) +
                                   " (it is built beside the sdinterp executable: rebuild with scripts/build.sh)");
  }
  auto create = reinterpret_cast<RuntimeEntryPoint>(::dlsym(handle, kRuntimeEntryPoint));
  static const RuntimeHost host{&host_interrupted};
  instance = create != nullptr ? create(&host, kRuntimeInterfaceVersion) : nullptr;
  if (instance == nullptr) {
    throw Error(kExitInternal, path + " is from another build of sdinterp: rebuild with scripts/build.sh");
  }
  return *instance;
}

}  // namespace sdinterp::cli
