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

// LibTorch's CPU threads come from GNU OpenMP, whose idle threads spin before they sleep. Alone,
// a process gains a little from that; but several sdinterp processes on one machine (a batch
// script running jobs side by side) then burn the cores spinning against each other. Measured on
// 2 cores, two tiny-sd runs at once (30 frames x 15 steps) took 5-73 s each, erratically, and 96%
// of the time went to libgomp's spin loops (a shorter GOMP_SPINCOUNT did not cure it); with
// passive waiting they took 2.2-2.5 s each, every time. A lone run pays nothing measurable at
// 256x256 and about 14% on the 64x64 toy model (bench/concurrent_runs.sh). libgomp reads its
// environment when it is loaded, that is when the runtime is; a user's own setting wins.
void tune_openmp() {
  if (std::getenv("OMP_WAIT_POLICY") == nullptr && std::getenv("GOMP_SPINCOUNT") == nullptr) {
    ::setenv("OMP_WAIT_POLICY", kDefaultOmpWaitPolicy, 0);
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
