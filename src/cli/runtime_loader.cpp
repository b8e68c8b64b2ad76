#include <dlfcn.h>
#include <unistd.h>

#include <climits>
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

}  // namespace

Runtime& runtime() {
  static Runtime* instance = nullptr;  // never freed: the library is never unloaded
  if (instance != nullptr) return *instance;
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
