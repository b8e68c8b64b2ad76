#include "io/module_loader.h"

#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>

#include "sdinterp/errors.h"

namespace sdinterp::io {
namespace {

// How the modules are opened, by the value of SDINTERP_DLOPEN; the first entry is the default.
// global, as Python's torch puts LibTorch's libraries in the global scope: opened RTLD_LOCAL, a
// CUDA AOTInductor package crashed in its constructor (issue 13; the H100 run of 2026-12-06: a
// std::regex in the package's parse_device_str reached a locale facet of the wrong libstdc++
// copy), and opened RTLD_GLOBAL it ran, in sdinterp and in the probe. local is kept to diagnose.
// RTLD_DEEPBIND is no choice: the module's references to std::cout then bind to libstdc++'s own
// copy instead of the executable's (a copy relocation), which is never constructed, and the first
// progress line crashes.
struct DlopenMode {
  const char* name;
  int flags;
};
constexpr DlopenMode kDlopenModes[] = {
    {"global", RTLD_NOW | RTLD_GLOBAL},
    {"local", RTLD_NOW | RTLD_LOCAL},
};

int dlopen_flags() {
  const char* wanted = std::getenv("SDINTERP_DLOPEN");
  if (wanted == nullptr || *wanted == '\0') return kDlopenModes[0].flags;
  std::string names;
  for (const DlopenMode& mode : kDlopenModes) {
    if (std::string(wanted) == mode.name) return mode.flags;
    names += std::string(names.empty() ? "" : ", ") + mode.name;
  }
  throw ConfigError("SDINTERP_DLOPEN is '" + std::string(wanted) + "': use " + names + " (or leave it unset)");
}

}  // namespace

ModuleSymbol load_module_symbol(const std::string& file_name, const std::vector<std::string>& fallbacks,
                                const char* symbol) {
  std::vector<std::string> candidates;
  char exe[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    std::string path(exe, static_cast<size_t>(n));
    candidates.push_back(path.substr(0, path.rfind('/')) + "/" + file_name);
  }
  candidates.insert(candidates.end(), fallbacks.begin(), fallbacks.end());

  const int flags = dlopen_flags();
  ModuleSymbol found;
  for (const std::string& path : candidates) {
    if (::access(path.c_str(), F_OK) != 0) continue;
    void* handle = ::dlopen(path.c_str(), flags);
    if (handle == nullptr) {
      const char* why = ::dlerror();
      if (found.error.empty()) found = {nullptr, path, why != nullptr ? why : path + " cannot be loaded"};
      continue;
    }
    if (void* address = ::dlsym(handle, symbol)) return {address, path, ""};
    if (found.error.empty()) found = {nullptr, path, path + " is from another build of sdinterp"};
  }
  if (found.error.empty()) {
    found.path = candidates.empty() ? file_name : candidates.front();
    found.error = file_name + " not found beside the executable";
  }
  return found;
}

}  // namespace sdinterp::io
